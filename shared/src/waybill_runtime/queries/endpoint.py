"""One query endpoint: decode the request, run the handler, send the answer or an error reply.

Whatever the handler does, the caller gets either the typed answer or an ADR-32
error reply; an unexpected exception is logged here and never reaches the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from waybill_runtime.json_input import decode_bounded
from waybill_runtime.queries.discovery import EndpointInfo, EndpointStats
from waybill_runtime.queries.errors import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    INTERNAL_ERROR_DESCRIPTION,
    UNAVAILABLE,
    QueryError,
    error_headers,
)
from waybill_runtime.telemetry import query_span

logger = logging.getLogger(__name__)

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)

# A query with no parameters is naturally asked with an empty body (`nats req
# subject ""`); reading that as an empty object lets such queries decode, and a
# query that does need fields still gets a 400 naming the missing one.
_EMPTY_REQUEST = b"{}"


class QueryEndpoint(Generic[Req, Resp]):
    """A typed request/response endpoint and its ADR-32 counters."""

    def __init__(
        self,
        *,
        name: str,
        subject: str,
        queue_group: str,
        request_type: type[Req],
        response_type: type[Resp],
        handler: Callable[[Req], Awaitable[Resp]],
        metadata: dict[str, str],
    ) -> None:
        self.name = name
        self.subject = subject
        self.queue_group = queue_group
        self.metadata = metadata
        self._response_type = response_type
        self._handler = handler
        self._decoder = msgspec.json.Decoder(request_type)
        self._encoder = msgspec.json.Encoder()
        self._num_requests = 0
        self._num_errors = 0
        self._last_error = ""
        self._processing_time_ns = 0

    def info(self) -> EndpointInfo:
        """How `$SRV.INFO` describes this endpoint."""
        return EndpointInfo(
            name=self.name,
            subject=self.subject,
            queue_group=self.queue_group,
            metadata=dict(self.metadata),
        )

    def stats(self) -> EndpointStats:
        """This endpoint's counters as `$SRV.STATS` reports them."""
        average = self._processing_time_ns // self._num_requests if self._num_requests else 0
        return EndpointStats(
            name=self.name,
            subject=self.subject,
            queue_group=self.queue_group,
            num_requests=self._num_requests,
            num_errors=self._num_errors,
            last_error=self._last_error,
            processing_time=self._processing_time_ns,
            average_processing_time=average,
        )

    async def answer(self, nc: Client, msg: Msg) -> None:
        """Handle one request and reply to it; never raises except on cancellation."""
        self._num_requests += 1
        started = time.perf_counter_ns()
        try:
            with query_span(msg.subject, kind=SpanKind.SERVER, headers=msg.headers):
                await self._answer(nc, msg)
        except asyncio.CancelledError:
            # Only a stop() whose drain deadline passed cancels a request; tell
            # the caller to retry (another replica may answer) instead of
            # leaving it to time out.
            await self._reply_error(nc, msg, QueryError(UNAVAILABLE, "service stopping: retry"))
            raise
        finally:
            self._processing_time_ns += time.perf_counter_ns() - started

    async def _answer(self, nc: Client, msg: Msg) -> None:
        try:
            request = decode_bounded(msg.data or _EMPTY_REQUEST, self._decoder.decode)
        except (msgspec.ValidationError, msgspec.DecodeError) as bad:
            # msgspec's message names the field and the expected type
            # ("Expected `int`, got `str` - at `$.lines`") and holds no internals.
            await self._reply_error(nc, msg, QueryError(BAD_REQUEST, f"bad request: {bad}"))
            return
        try:
            response = await self._handler(request)
            if not isinstance(response, self._response_type):
                raise TypeError(
                    f"handler returned {type(response).__name__}, "
                    f"expected {self._response_type.__name__}"
                )
            body = self._encoder.encode(response)
        except QueryError as refused:
            await self._reply_error(nc, msg, refused)
            return
        except Exception as failure:
            await self._reply_unexpected(nc, msg, failure)
            return
        if not msg.reply:
            return  # published without a reply subject: nobody to answer
        try:
            await nc.publish(msg.reply, body)
        except MaxPayloadError as too_big:
            await self._reply_unexpected(nc, msg, too_big)
        except NatsError as lost:
            logger.warning("query endpoint %s could not send its answer: %r", self.name, lost)

    async def _reply_unexpected(self, nc: Client, msg: Msg, failure: BaseException) -> None:
        # The type and message go to the log for the operator; the caller only
        # learns that it failed, because exception text can carry internals.
        logger.error("query endpoint %s failed: %s: %s", self.name, type(failure).__name__, failure)
        logger.debug("query endpoint %s failure detail", self.name, exc_info=failure)
        await self._reply_error(nc, msg, QueryError(INTERNAL_ERROR, INTERNAL_ERROR_DESCRIPTION))

    async def _reply_error(self, nc: Client, msg: Msg, error: QueryError) -> None:
        self._num_errors += 1
        self._last_error = str(error)
        span = trace.get_current_span()  # the query's SERVER span, when traced
        if span.is_recording():
            span.set_attribute("error.type", str(error.code))
            span.set_status(Status(StatusCode.ERROR, error.description[:300]))
        if not msg.reply:
            return
        try:
            await nc.publish(msg.reply, b"", headers=error_headers(error.code, error.description))
        except NatsError as lost:
            logger.warning("query endpoint %s could not send its error reply: %r", self.name, lost)
