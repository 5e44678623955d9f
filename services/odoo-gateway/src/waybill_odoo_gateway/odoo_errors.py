"""What an Odoo failure means for the message being handled: retry it, or give up on it.

Odoo reports errors by exception name (``odoo.exceptions.UserError``,
``psycopg2.errors.SerializationFailure``) inside a JSON-RPC error object, or
by HTTP status plus the same name on JSON-2. Both protocols map them here,
onto the runtime's outcomes:

- refusals no retry can fix (AccessError, UserError, ValidationError,
  MissingError, RedirectWarning) -> :class:`OdooRefused` (dead letter, with
  Odoo's message as the reason);
- lock conflicts that outlived Odoo's own retries, 5xx, timeouts, connection
  trouble -> :class:`OdooUnavailable` (redelivered later);
- wrong credentials -> :class:`OdooLoginRejected`, also retried: the message
  waits until someone fixes the login instead of being thrown away;
- any other server exception -> :class:`OdooServerError`, which the runtime
  retries and finally dead-letters like any unexpected error.
"""

from __future__ import annotations

from typing import Any

from waybill_runtime.outcomes import PermanentError, TransientError

__all__ = [
    "OdooLoginRejected",
    "OdooRefused",
    "OdooServerError",
    "OdooUnavailable",
    "error_from_name",
]

# Exception names (the last dotted part) that mean "this request will never work".
_REFUSALS = frozenset(
    {"AccessError", "UserError", "ValidationError", "MissingError", "RedirectWarning"}
)
# Database-level conflicts Odoo normally retries itself; one that reaches us is
# still worth another try a little later. Odoo 19 names them itself: its
# odoo/service/model.py ``retrying`` re-raises a conflict that outlived its
# retries as ``ConcurrencyError``, and a row lock not granted is ``LockError``.
_CONFLICTS = frozenset(
    {
        "SerializationFailure",
        "TransactionRollbackError",
        "LockNotAvailable",
        "DeadlockDetected",
        "ConcurrencyError",
        "LockError",
    }
)


class OdooRefused(PermanentError):
    """Odoo refused the call for a reason no retry can fix."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"Odoo refused: {short_name(name)}: {message}")
        self.odoo_name: str | None = name
        self.odoo_message = message


class OdooUnavailable(TransientError):
    """Odoo could not be reached or could not answer now; try again later.

    ``odoo_name`` is the Odoo exception behind it when Odoo itself answered
    (a lock conflict); None when the network or a proxy failed.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        odoo_name: str | None = None,
    ) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.odoo_name = odoo_name


class OdooLoginRejected(OdooUnavailable):
    """Odoo rejected the gateway's login, password or API key; retried until someone fixes it."""


class OdooServerError(Exception):
    """Odoo failed with an unexpected server error (a bug or a custom module's exception)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"Odoo server error: {name}: {message}")
        self.odoo_name: str | None = name


def short_name(name: str) -> str:
    """``odoo.exceptions.UserError`` -> ``UserError``."""
    return name.rpartition(".")[2] or name


def error_from_name(name: str, message: str, where: str) -> Exception:
    """The exception for an Odoo error named ``name`` (``odoo.exceptions.UserError``).

    ``where`` names the Odoo instance and the call, for the messages that are retried.
    The exception's ``odoo_name`` tells it came from Odoo's answer, not from the network.
    """
    short = short_name(name)
    if short == "AccessDenied":
        return OdooLoginRejected(
            f"{where}: Odoo rejected the credentials ({message})", odoo_name=name
        )
    # Conflicts first: were a LockError ever a UserError, it would still be worth retrying.
    if short in _CONFLICTS or "could not serialize" in message:
        return OdooUnavailable(
            f"{where}: lock conflict in Odoo ({message}); retrying later", odoo_name=name
        )
    if short in _REFUSALS:
        return OdooRefused(name, message)
    if short == "SessionExpiredException" or name.startswith("psycopg2.OperationalError"):
        return OdooUnavailable(f"{where}: {short}: {message}", odoo_name=name)
    return OdooServerError(name, message)


def error_data(error: Any) -> tuple[str, str]:
    """``(name, message)`` from an Odoo error body (JSON-RPC ``error.data`` or a JSON-2 body)."""
    if not isinstance(error, dict):
        return "builtins.Exception", str(error)
    name = error.get("name")
    message = error.get("message")
    return (
        name if isinstance(name, str) and name else "builtins.Exception",
        message if isinstance(message, str) else str(message),
    )
