"""The registry of message types: every type listed exactly once, found by ``ce-type``.

Adding a message means defining its struct and adding it to the tuple of its
module (``EVENT_TYPES``, ``COMMAND_TYPES``, ``QUERY_TYPES``); this module,
the subject map, the envelope and the exports pick it up from there.
"""

from __future__ import annotations

from waybill_contracts.commands import COMMAND_TYPES
from waybill_contracts.errors import UnknownType
from waybill_contracts.events import EVENT_TYPES
from waybill_contracts.messages import Message
from waybill_contracts.queries import QUERY_TYPES

MESSAGE_TYPES: tuple[type[Message], ...] = (*EVENT_TYPES, *COMMAND_TYPES, *QUERY_TYPES)
"""Every message type of the contracts."""


def _index_by_ce_type(message_types: tuple[type[Message], ...]) -> dict[str, type[Message]]:
    index: dict[str, type[Message]] = {}
    for message_type in message_types:
        ce_type = message_type.ce_type()
        if ce_type in index:
            # A programming error in the contracts themselves: fail at import,
            # long before two message types could be confused on the wire.
            raise TypeError(
                f"ce-type {ce_type} is claimed by both {index[ce_type].__qualname__} "
                f"and {message_type.__qualname__}"
            )
        index[ce_type] = message_type
    return index


_BY_CE_TYPE = _index_by_ce_type(MESSAGE_TYPES)
_CE_TYPE_OF = {message_type: ce_type for ce_type, message_type in _BY_CE_TYPE.items()}


def message_type_for_ce_type(ce_type: str) -> type[Message]:
    """The message type whose ``ce-type`` this is; :class:`UnknownType` otherwise."""
    try:
        return _BY_CE_TYPE[ce_type]
    except (KeyError, TypeError):  # TypeError: an unhashable value from a bad caller
        raise UnknownType(f"unknown ce-type {ce_type!r}", field="ce-type") from None


def ce_type_for(message_type: type[Message]) -> str:
    """The ``ce-type`` of a registered message type; :class:`UnknownType` otherwise."""
    try:
        return _CE_TYPE_OF[message_type]
    except (KeyError, TypeError):
        raise not_in_catalog(message_type) from None


def not_in_catalog(message_type: object) -> UnknownType:
    """The error for a Python type that is not a registered message type."""
    return UnknownType(
        f"{message_type!r} is not a message type of the contracts catalog", field="ce-type"
    )
