"""Personal data masked in message bodies before the API shows them.

The database keeps bodies as they were sent (the audit trail must be
complete, and its file is for operators only); what leaves over HTTP is
masked with the same rules as the logs, plus the names and postal codes in
the customer, recipient and delivery-address objects, which a plain field
name does not reveal as personal.
"""

from __future__ import annotations

from typing import Any

from waybill_runtime.logs import mask_field, mask_name, mask_text

MASK = "***"

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
