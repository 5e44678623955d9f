"""The base of every struct that travels on the wire.

Decoding already rejects datetimes without a timezone (``Meta(tz=True)``),
but a struct built in Python is not validated by msgspec. A naive datetime
would then be encoded without an offset and every consumer would reject the
message. :class:`Record` closes that gap at construction time, so the
mistake surfaces in the service that made it, not in a dead-letter queue.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime

import msgspec

# Per struct type: the names of its fields that may hold a datetime.
# Filled on first construction of each type; a cache, not shared state.
_DATETIME_FIELDS: dict[type, tuple[str, ...]] = {}


def _holds_datetime(hint: object) -> bool:
    if hint is datetime:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _holds_datetime(typing.get_args(hint)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(_holds_datetime(arg) for arg in typing.get_args(hint))
    return False


def _datetime_fields(struct_type: type[msgspec.Struct]) -> tuple[str, ...]:
    names = tuple(
        field.name for field in msgspec.structs.fields(struct_type) if _holds_datetime(field.type)
    )
    _DATETIME_FIELDS[struct_type] = names
    return names


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Frozen, keyword-only struct whose datetimes must carry a timezone."""

    def __post_init__(self) -> None:
        names = _DATETIME_FIELDS.get(type(self))
        if names is None:
            names = _datetime_fields(type(self))
        for name in names:
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(
                    f"{type(self).__name__}.{name} must be a timezone-aware datetime (UTC), "
                    f"got naive {value.isoformat()}"
                )
