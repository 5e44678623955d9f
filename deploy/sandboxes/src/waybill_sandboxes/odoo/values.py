"""Converting values written through the API into what the registry stores.

Mirrors how Odoo's fields accept values: numbers are coerced, empty strings
become ``False``, dates must be ``"YYYY-MM-DD"`` and datetimes
``"YYYY-MM-DD HH:MM:SS"``, a selection only takes one of its options.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from waybill_sandboxes.odoo.exceptions import value_error
from waybill_sandboxes.odoo.schema import Field

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def empty(value: Any) -> bool:
    """Whether Odoo would store this as NULL (and read it back as ``False``)."""
    return value is None or value is False or value == "" or value == []


def hashable(value: Any) -> bool:
    """Whether ``value`` can be a dict key (a tuple holding a list cannot, though it is
    a ``Hashable`` to ``isinstance``)."""
    try:
        hash(value)
    except TypeError:
        return False
    return True


def convert_for_write(model: str, field: Field, raw: Any) -> Any:
    """The stored form of ``raw`` for a non-x2many field, or a ValueError-shaped error."""
    if field.type == "boolean":
        return bool(raw)
    if empty(raw):
        return 0.0 if field.type == "float" else 0 if field.type == "integer" else False
    where = f"{model}.{field.name}"
    if field.type in ("char", "text", "html"):
        if isinstance(raw, list | dict):
            raise value_error(f"Wrong value for {where}: {raw!r}")
        return str(raw)
    if field.type == "selection":
        if raw not in {option for option, _label in field.selection}:
            raise value_error(f"Wrong value for {where}: {raw!r}")
        return raw
    if field.type in ("integer", "many2one", "many2one_reference"):
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise value_error(f"Wrong value for {where}: {raw!r}")
        try:
            return int(raw)
        except ValueError as bad:
            raise value_error(f"Wrong value for {where}: {raw!r}") from bad
    if field.type in ("float", "monetary"):
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise value_error(f"Wrong value for {where}: {raw!r}")
        try:
            return float(raw)
        except ValueError as bad:
            raise value_error(f"Wrong value for {where}: {raw!r}") from bad
    if field.type == "date":
        return _checked_time(where, raw, 10, DATE_FORMAT)
    if field.type == "datetime":
        text = raw if not isinstance(raw, str) or len(raw) != 10 else f"{raw} 00:00:00"
        return _checked_time(where, text, 19, DATETIME_FORMAT)
    raise value_error(f"Wrong value for {where}: {raw!r}")


def _checked_time(where: str, raw: Any, length: int, pattern: str) -> str:
    if not isinstance(raw, str):
        raise value_error(f"Wrong value for {where}: {raw!r}")
    text = raw[:length]
    try:
        datetime.strptime(text, pattern)
    except ValueError as bad:
        raise value_error(f"time data {raw!r} does not match format {pattern!r}") from bad
    return text
