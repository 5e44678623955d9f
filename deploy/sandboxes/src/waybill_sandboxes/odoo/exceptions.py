"""The errors the Odoo sandbox raises, shaped like the ones real Odoo sends.

Each protocol adapter turns these into its own wire form (JSON-RPC error
object, XML-RPC fault, JSON-2 status and body), so the business code raises
one kind of error and every client sees what a real Odoo would send it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorKind(Enum):
    """How the protocols classify an error (XML-RPC fault code, JSON-2 status)."""

    USER = "user"  # UserError, ValidationError, RedirectWarning
    MISSING = "missing"  # MissingError
    ACCESS_DENIED = "access_denied"  # wrong login, password or API key
    ACCESS_ERROR = "access_error"  # authenticated but not allowed
    SESSION_EXPIRED = "session_expired"
    CONCURRENCY = "concurrency"  # a lock conflict that survived Odoo's retries
    INTERNAL = "internal"  # any other Python exception on the server


class OdooError(Exception):
    """Base of every error the sandbox's Odoo side raises.

    ``qualified_name`` is what real Odoo puts in ``data.name`` (JSON-RPC) or
    ``name`` (JSON-2): the module-qualified class name of the exception.
    """

    qualified_name = "builtins.Exception"
    kind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context or {}

    @property
    def arguments(self) -> list[Any]:
        """The exception's ``args`` as Odoo serialises them."""
        return [self.message]

    @property
    def short_name(self) -> str:
        """The class name without its module (``UserError``)."""
        return self.qualified_name.rpartition(".")[2]

    def traceback_text(self) -> str:
        """A Python-style traceback, as Odoo puts in ``debug`` and XML-RPC faults."""
        return (
            "Traceback (most recent call last):\n"
            '  File "/opt/odoo/odoo/service/model.py", line 0, in dispatch\n'
            f"{self.qualified_name}: {self.message}\n"
        )


class UserError(OdooError):
    """A business rule refused the operation (``odoo.exceptions.UserError``)."""

    qualified_name = "odoo.exceptions.UserError"
    kind = ErrorKind.USER


class ValidationError(UserError):
    """A constraint failed, e.g. a mandatory field is missing."""

    qualified_name = "odoo.exceptions.ValidationError"


class RedirectWarning(UserError):
    """A user error that suggests an action (kept for completeness of the mapping)."""

    qualified_name = "odoo.exceptions.RedirectWarning"


class MissingError(UserError):
    """The record does not exist (any more)."""

    qualified_name = "odoo.exceptions.MissingError"
    kind = ErrorKind.MISSING


class AccessError(UserError):
    """The user is known but not allowed to do this."""

    qualified_name = "odoo.exceptions.AccessError"
    kind = ErrorKind.ACCESS_ERROR


class AccessDenied(UserError):
    """Wrong login, password or API key. Real Odoo hides the reason."""

    qualified_name = "odoo.exceptions.AccessDenied"
    kind = ErrorKind.ACCESS_DENIED

    def __init__(self, message: str = "Access Denied") -> None:
        super().__init__(message)


class SessionExpired(OdooError):
    """The web session cookie is missing or no longer valid."""

    qualified_name = "odoo.http.SessionExpiredException"
    kind = ErrorKind.SESSION_EXPIRED

    def __init__(self, message: str = "Session expired") -> None:
        super().__init__(message)


class SerializationFailure(OdooError):
    """A concurrent update won; PostgreSQL refused to serialise the transaction."""

    qualified_name = "psycopg2.errors.SerializationFailure"
    kind = ErrorKind.CONCURRENCY

    def __init__(
        self,
        message: str = "could not serialize access due to concurrent update",
        *,
        qualified_name: str | None = None,
    ) -> None:
        super().__init__(message)
        if qualified_name is not None:
            self.qualified_name = qualified_name


def lock_conflict(version_major: int, *, record_lock: bool = False) -> SerializationFailure:
    """The conflict a caller sees once Odoo's own retries ran out.

    Up to 18.0 the psycopg2 error travels as is. 19.0 odoo/service/model.py
    ``retrying`` re-raises it as ``odoo.exceptions.ConcurrencyError``, and a row
    another transaction holds (``FOR UPDATE NOWAIT``) is ``odoo.exceptions.LockError``;
    neither message says "could not serialize".
    """
    if version_major < 19:
        return SerializationFailure()
    if record_lock:
        return SerializationFailure(
            "Cannot lock the record: another transaction is modifying it. Try again later.",
            qualified_name="odoo.exceptions.LockError",
        )
    return SerializationFailure(
        "Concurrent update: the transaction was retried too many times. Try again later.",
        qualified_name="odoo.exceptions.ConcurrencyError",
    )


class InternalError(OdooError):
    """Any other server-side Python error, named like the builtin it mimics."""

    def __init__(self, python_class: str, message: str) -> None:
        super().__init__(message)
        self.qualified_name = python_class


def value_error(message: str) -> InternalError:
    """``builtins.ValueError``: bad field names, bad domains, bad values."""
    return InternalError("builtins.ValueError", message)


class WrongArguments(InternalError):
    """``builtins.TypeError``: the arguments do not fit the method's signature.

    JSON-RPC and XML-RPC report it like any server error; JSON-2 checks the
    arguments before calling and answers 422.
    """

    def __init__(self, message: str) -> None:
        super().__init__("builtins.TypeError", message)
