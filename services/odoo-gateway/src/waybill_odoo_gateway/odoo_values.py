"""Reading Odoo's wire values: many2one pairs, ``false`` for empty, datetimes as text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

__all__ = [
    "ODOO_DATETIME",
    "decimal_quantity",
    "earlier",
    "first_id",
    "format_datetime",
    "many2one_id",
    "many2one_name",
    "parse_datetime",
    "text",
]

ODOO_DATETIME = "%Y-%m-%d %H:%M:%S"
"""How Odoo writes datetimes on the wire: UTC, to the second, no zone."""

# Odoo's float fields carry binary noise (0.30000000000000004); six places is finer than
# any unit of measure's rounding.
_QUANTITY_PLACES = Decimal("0.000001")


def decimal_quantity(value: Any) -> Decimal:
    """A float field's value (quantity, amount) as a Decimal without binary noise; 0 for
    ``false``."""
    return Decimal(repr(float(value or 0.0))).quantize(_QUANTITY_PLACES).normalize()


def text(value: Any) -> str | None:
    """A char field's value, None for Odoo's ``false`` or blank text."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def many2one_id(value: Any) -> int | None:
    """The id of a many2one value: ``[7, "Name"]`` (read) or ``7`` (load=None); None if empty."""
    if isinstance(value, list | tuple) and value:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def many2one_name(value: Any) -> str | None:
    """The display name of a many2one read as ``[7, "Name"]``; None otherwise."""
    if isinstance(value, list | tuple) and len(value) > 1 and isinstance(value[1], str):
        return value[1]
    return None


# A recordset sent as text: Odoo 16-18's JSON-RPC falls back to str() for a method
# returning records without @api.returns (activity_schedule): "mail.activity(5,)".
_RECORDSET_TEXT = re.compile(r"^[\w.]+\((\d+)[,)]")


def first_id(value: Any) -> int | None:
    """A created record's id: an int or ``"model(5,)"`` over JSON-RPC, ids over JSON-2."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, str):
        found = _RECORDSET_TEXT.match(value)
        return int(found.group(1)) if found else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Odoo's datetimes as it writes them: read by datetime.fromisoformat (C) once they are
# known to be in that form; strptime (pure Python, about 10 us a value, two a release)
# reads anything else the way it always did.
_ODOO_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def parse_datetime(value: Any) -> datetime | None:
    """An Odoo datetime (``"2025-03-14 09:30:00"``, UTC) as an aware datetime; None if empty."""
    if not isinstance(value, str) or not value:
        return None
    moment = value[:19]
    try:
        if _ODOO_MOMENT.fullmatch(moment):
            return datetime.fromisoformat(moment).replace(tzinfo=UTC)
        return datetime.strptime(moment, ODOO_DATETIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def format_datetime(moment: datetime) -> str:
    """An aware datetime the way Odoo compares datetimes in domains (UTC text)."""
    return moment.astimezone(UTC).strftime(ODOO_DATETIME)


def earlier(value: str, seconds: float) -> str:
    """The Odoo datetime ``seconds`` before ``value`` (unreadable values pass unchanged)."""
    moment = parse_datetime(value)
    return value if moment is None else format_datetime(moment - timedelta(seconds=seconds))
