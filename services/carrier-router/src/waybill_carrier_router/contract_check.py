"""A last check before publishing: the message must decode as its own contract.

Structs built in Python are not validated by msgspec, so a carrier's odd
answer (a 70-character service code, a lower-case currency) could otherwise
reach the bus and be refused by every consumer. Failing here keeps the
poison in this service's dead-letter stream, with the reason.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from waybill_contracts import Message
from waybill_runtime.outcomes import PermanentError

__all__ = ["checked"]

M = TypeVar("M", bound=Message)

_encode = msgspec.json.Encoder().encode


def checked(message: M) -> M:
    """``message`` itself, once it is known to satisfy its contract's constraints."""
    try:
        msgspec.json.decode(_encode(message), type=type(message))
    except msgspec.ValidationError as error:
        raise PermanentError(
            f"{type(message).__name__} would break its contract: {error}"
        ) from error
    return message
