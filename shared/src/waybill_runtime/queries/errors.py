"""Error replies of the query API: the ADR-32 error headers and the exception behind them."""

from __future__ import annotations

from collections.abc import Mapping

# ADR-32: every error reply carries both headers, whatever the body says, so any
# NATS client (Go, JS, the `nats` CLI) can tell an error from an answer.
ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"

# Codes follow HTTP's meaning so they read the same in logs, dashboards and the
# HTTP API that fronts some queries.
BAD_REQUEST = 400
INTERNAL_ERROR = 500
BAD_ANSWER = 502
UNAVAILABLE = 503
NO_ANSWER_IN_TIME = 504

# The description sent for an unexpected handler failure. The real exception
# stays in the service log: its text may hold internals (SQL, file paths, keys).
INTERNAL_ERROR_DESCRIPTION = "internal error"

# Header values travel inside the NATS protocol: a line break would end the
# header block early, and an unbounded value could exceed the server's limits.
_MAX_DESCRIPTION_CHARS = 1024


class QueryError(Exception):
    """A query answered with an error, or could not be answered.

    Handlers raise it for a deliberate error reply (``QueryError(404, "order not
    found")``); :func:`~waybill_runtime.queries.ask` raises it when the reply
    carries the ADR-32 error headers.
    """

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description


class QueryUnansweredError(QueryError):
    """Nobody answered: no service listens on the subject, or none replied in time."""


def error_headers(code: int, description: str) -> dict[str, str]:
    """The ADR-32 headers for an error reply, with the description made safe to send."""
    flat = " ".join(description.split()) or "error"
    return {ERROR_HEADER: flat[:_MAX_DESCRIPTION_CHARS], ERROR_CODE_HEADER: str(code)}


def error_in_headers(headers: Mapping[str, str] | None) -> QueryError | None:
    """The error a reply's headers announce, or None when the reply is an answer."""
    if not headers:
        return None
    description = headers.get(ERROR_HEADER)
    raw_code = headers.get(ERROR_CODE_HEADER)
    if description is None and raw_code is None:
        return None
    try:
        code = int(raw_code) if raw_code is not None else INTERNAL_ERROR
    except ValueError:
        # ADR-32 says the code is always numeric; a service that breaks that
        # still failed, so report it rather than crash on the parse.
        code = INTERNAL_ERROR
    return QueryError(code, description or "error without description")
