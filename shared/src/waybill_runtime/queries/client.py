"""Asking another service a query: typed request in, typed answer or QueryError out."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from opentelemetry.trace import SpanKind

from waybill_runtime.queries.errors import (
    BAD_ANSWER,
    NO_ANSWER_IN_TIME,
    UNAVAILABLE,
    QueryError,
    QueryUnansweredError,
    error_in_headers,
)
from waybill_runtime.telemetry import query_span

R = TypeVar("R", bound=msgspec.Struct)


async def ask(
    nc: Client,
    subject: str,
    request: msgspec.Struct,
    response_type: type[R],
    *,
    # The deadline is part of the request (nats-py's own timeout), not a scope
    # around it, and every query must choose one: hence a parameter.
    timeout: float,  # noqa: ASYNC109
) -> R:
    """Send ``request`` to the query on ``subject`` and return its typed answer.

    Raises :class:`QueryError` with the service's code and description when it
    answers with an ADR-32 error reply, or with 502 when the answer is not a
    ``response_type``; raises :class:`QueryUnansweredError` (503 when nothing
    listens on the subject, 504 when no answer came within ``timeout`` seconds).
    """
    headers: dict[str, str] = {}
    # The span carries the error of a refused or unanswered query (error status, type).
    with query_span(subject, kind=SpanKind.CLIENT, headers=headers):
        reply = await _request(nc, subject, msgspec.json.encode(request), headers, timeout)
        refused = error_in_headers(reply.headers)
        if refused is not None:
            raise refused
    try:
        return msgspec.json.decode(reply.data, type=response_type)
    except (msgspec.ValidationError, msgspec.DecodeError) as bad:
        raise QueryError(
            BAD_ANSWER, f"answer on {subject} is not a {response_type.__name__}: {bad}"
        ) from None


async def _request(
    nc: Client,
    subject: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,  # noqa: ASYNC109 - nats-py's own deadline, as in ask()
) -> Msg:
    try:
        return await nc.request(subject, body, timeout=timeout, headers=headers or None)
    except NoRespondersError:
        raise QueryUnansweredError(
            UNAVAILABLE, f"no service answers {subject}: check that it is running"
        ) from None
    except NatsTimeoutError:
        raise QueryUnansweredError(
            NO_ANSWER_IN_TIME,
            f"no answer on {subject} within {timeout:g}s: the service is busy or stuck, "
            "retry or check its health",
        ) from None
