"""A last check before publishing: the message must decode as its own contract.

Structs built in Python are not validated by msgspec, so a carrier's odd
answer (a 70-character service code, a lower-case currency) could otherwise
reach the bus and be refused by every consumer. Failing here keeps the
poison in this service's dead-letter stream, with the reason.
"""

from __future__ import annotations

from typing import TypeVar

from waybill_contracts import ContractError, Message, validate
from waybill_runtime.outcomes import PermanentError

__all__ = ["checked"]

M = TypeVar("M", bound=Message)


def checked(message: M) -> M:
    """``message`` itself, once it is known to satisfy its contract's constraints."""
    try:
        return validate(message)
    except ContractError as error:
        raise PermanentError(str(error)) from error
