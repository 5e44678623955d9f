"""Personal data masked in message bodies before the API shows them.

The database keeps bodies as they were sent (the audit trail must be
complete, and its file is for operators only); what leaves over HTTP follows
the personal-data policy of :mod:`waybill_runtime.personal_data` (emails
hashed, phones and names masked, addresses shown as ``***`` so a document
keeps its shape), plus the names and postal codes in the customer, recipient
and delivery-address objects, which a plain field name does not reveal as
personal.

A body that is not JSON (often why it is a dead letter: cut short, not UTF-8,
forged) is shown as text, masked as free text and, since it may be JSON cut
short, with the value of every personal-looking ``"key": "value"`` pair masked
as well.
"""

from __future__ import annotations

import re
from typing import Any

from waybill_runtime.personal_data import (
    MASK,
    PiiKind,
    mask_field,
    mask_name,
    mask_text,
    pii_kind,
)

PERSONAL_OBJECTS = frozenset({"customer", "recipient", "ship_to"})
"""Keys whose object describes a person (Party) or their address (Address)."""

_NAMES = frozenset({"name", "company"})
_HIDDEN = frozenset({"postal_code"})


def mask_personal_data(value: Any, *, personal: bool = False) -> Any:
    """``value`` (decoded JSON) with personal data masked; the input is not changed."""
    if isinstance(value, dict):
        return {key: _mask_member(key, member, personal) for key, member in value.items()}
    if isinstance(value, list):
        return [mask_personal_data(item, personal=personal) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


# A string member of a JSON text, complete or cut short at the end of the text.
_MEMBER = re.compile(r'"(?P<key>[A-Za-z0-9_]{1,64})"\s*:\s*"(?P<value>(?:[^"\\]|\\.)*+)(?:"|$)')


def _mask_member_text(found: re.Match[str]) -> str:
    key, value = found.group("key"), found.group("value")
    kind = pii_kind(key)
    if kind is None and key in _NAMES | _HIDDEN:
        # In text, whose object a member belongs to is unknown: every name is masked.
        kind = PiiKind.NAME if key in _NAMES else PiiKind.ADDRESS
    if kind is None or not value:
        return found.group(0)
    masked = mask_name(value) if kind is PiiKind.NAME else str(mask_field(key, value))
    start, end = found.span("value")
    whole = found.group(0)
    offset = found.start()
    return whole[: start - offset] + masked + whole[end - offset :]


def mask_unreadable_text(text: str) -> str:
    """A body that is not JSON, as text: free-text masking, and personal members masked."""
    return mask_text(_MEMBER.sub(_mask_member_text, text))


def _mask_member(key: str, value: Any, personal: bool) -> Any:
    if isinstance(value, dict | list):
        return mask_personal_data(value, personal=personal or key in PERSONAL_OBJECTS)
    if personal and isinstance(value, str):
        if key in _NAMES:
            return mask_name(value)
        if key in _HIDDEN:
            return MASK if value else value
    masked = mask_field(key, value)
    if masked is not value:
        return masked
    return mask_personal_data(value)
