"""The one error family the contracts raise for bad wire data.

Every failure to read a message is a :class:`ContractError` whose ``field``
names the header or body field at fault, so a consumer can dead-letter the
message with a reason an operator understands instead of crashing.
"""

from __future__ import annotations


class ContractError(Exception):
    """A message, header or subject does not match the contracts.

    ``field`` is the header name (``"ce-id"``), the body path
    (``"order.lines[0].quantity"``), ``"body"`` for the body as a whole,
    or ``"subject"``; ``None`` when no single field is at fault.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[object, ...]:
        # Keep errors picklable (they cross process pools in tests and tools).
        return (_rebuild, (type(self), str(self), self.field))


def _rebuild(cls: type[ContractError], message: str, field: str | None) -> ContractError:
    error = cls.__new__(cls)
    ContractError.__init__(error, message, field=field)
    return error


class MalformedBody(ContractError):
    """The body is not JSON, or does not fit the message type (wrong type, missing field)."""


class MissingHeader(ContractError):
    """A required CloudEvents header is absent or empty."""


class InvalidHeader(ContractError):
    """A header is present but its value is not acceptable."""


class UnknownType(ContractError):
    """The ``ce-type`` (or a Python type) is not a message type of these contracts."""


class UnknownSubject(ContractError):
    """The subject is not one the subject map knows."""
