"""The personal-data policy: what happens to each kind of personal data before it leaves a process.

Waybill carries customers' names, emails, phone numbers and addresses in its
messages (a label cannot be bought without them). Log lines, span attributes
and the auditor's API views get them only as this policy allows, by kind:

========  ====================================================  ===================
kind      recognised by                                         logs, spans, views
========  ====================================================  ===================
email     a field ``email`` / ``*_email``; any address in text  hashed: ``email:9f86d081e3``
phone     ``phone``, ``mobile``, ``*_phone``; numbers in text   masked: ``***58``
name      ``customer_name``, ``recipient_name`` ... (and        masked: ``J*** D***``
          ``name`` inside a person, in the auditor's views)
address   ``street``, ``street2``, ``address``, ``zip``,        dropped (views: ``***``)
          ``postal_code``
========  ====================================================  ===================

The hash of an email (SHA-256 of the address in lower case, first 10 hex
digits) lets two lines about the same customer be matched without either
showing the address; it does not hide an address from someone who already
knows it and hashes it too. Nothing of the domain survives: it often names
the customer (``jane@doe-family.example``). Cities and countries stay
readable; they route parcels and name no one. Free text (an exception's
message, a body that is not JSON) can only be searched for what looks like an
email or a phone number; names and streets in free text are not recognised,
which is why message bodies never go to logs.
"""

from __future__ import annotations

import enum
import hashlib
import re
from typing import Any

__all__ = [
    "DROP",
    "MASK",
    "PiiKind",
    "hash_email",
    "log_field",
    "mask_email",
    "mask_field",
    "mask_name",
    "mask_phone",
    "mask_text",
    "pii_kind",
]

MASK = "***"


class _Drop(enum.Enum):
    DROP = "dropped"


DROP = _Drop.DROP
"""What :func:`log_field` answers for a field that must not be written at all."""


class PiiKind(enum.StrEnum):
    """A kind of personal data, each with its own treatment."""

    EMAIL = "email"
    PHONE = "phone"
    NAME = "name"
    ADDRESS = "address"


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# International numbers ("+44 20 7946 0958", "+447911123456") and grouped
# national ones ("(555) 123-4567", "030 1234 5678"). Plain digit runs are left
# alone: in a logistics log they are order, shipment and tracking numbers.
_PHONE = re.compile(
    r"(?<![\w+])"
    r"(?:\+\d[\d \-()]{6,}\d"  # international
    r"|\(?\d{2,4}\)?[ \-]\d{2,4}[ \-]\d{2,5}(?:[ \-]\d{2,5})?)"  # grouped national
    r"(?!\w)"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# Field names holding personal data, by exact name or by ``_<name>`` suffix.
_FIELD_NAMES: tuple[tuple[PiiKind, tuple[str, ...]], ...] = (
    (PiiKind.EMAIL, ("email",)),
    (PiiKind.PHONE, ("phone", "mobile")),
    (
        PiiKind.NAME,
        ("customer_name", "contact_name", "partner_name", "recipient_name", "full_name"),
    ),
    (PiiKind.ADDRESS, ("street", "street2", "address", "zip", "postal_code")),
)


def pii_kind(field_name: str) -> PiiKind | None:
    """The kind of personal data a field of this name holds, or None."""
    lowered = field_name.lower()
    for kind, names in _FIELD_NAMES:
        if any(lowered == name or lowered.endswith("_" + name) for name in names):
            return kind
    return None


def hash_email(value: str) -> str:
    """``jane.doe@example.com`` → ``email:<10 hex digits>``: the same address, the same text."""
    address = value.strip().lower()
    if not address:
        return ""
    return "email:" + hashlib.sha256(address.encode()).hexdigest()[:10]


def mask_email(value: str) -> str:
    """An email as the policy shows it: hashed (see :func:`hash_email`)."""
    return hash_email(value)


def mask_phone(value: str) -> str:
    """``+44 20 7946 0958`` → ``***58``: the last two digits tell numbers apart."""
    digits = re.sub(r"\D", "", value)
    if len(digits) < 4:
        return MASK if value else ""
    return MASK + digits[-2:]


def mask_name(value: str) -> str:
    """``Jane Doe`` → ``J*** D***``."""
    return " ".join(word[0] + MASK for word in value.split())


def _mask_phone_match(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    international = text.startswith("+")
    if _ISO_DATE.match(text) or not (8 if international else 9) <= digits <= 15:
        return text
    return mask_phone(text)


def mask_text(text: str) -> str:
    """Free text with every email address hashed and every phone number masked."""
    if "@" in text:
        text = _EMAIL.sub(lambda m: hash_email(m.group(0)), text)
    return _PHONE.sub(_mask_phone_match, text)


def _masked(kind: PiiKind, value: Any) -> Any:
    if not isinstance(value, str):
        return MASK
    if kind is PiiKind.EMAIL:
        return hash_email(value)
    if kind is PiiKind.PHONE:
        return mask_phone(value)
    if kind is PiiKind.NAME:
        return mask_name(value)
    return MASK if value else value


def mask_field(key: str, value: Any) -> Any:
    """``value`` as a view may show it, judged by the field name ``key`` (address: ``***``)."""
    kind = pii_kind(key)
    if kind is None or value is None:
        return value
    return _masked(kind, value)


def log_field(key: str, value: Any) -> Any:
    """``value`` as a log line or span may carry it; :data:`DROP` when it must be left out."""
    kind = pii_kind(key)
    if kind is None or value is None:
        return value
    if kind is PiiKind.ADDRESS:
        return DROP
    return _masked(kind, value)
