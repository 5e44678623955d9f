"""Publishing typed messages: context propagation, dedupe ids, trace context, publish acks.

A message published while handling another inherits its correlation id and
names it as its cause; a message that records a fact observed from outside
(a webhook, a poll) carries an id derived from that fact, so JetStream drops
the second observation (``Nats-Msg-Id`` = ``ce-id``).

Nothing that breaks the contracts leaves: before anything is sent, each
message's body is checked against its type's constraints (msgspec applies
them only when decoding, so a struct built in Python from a partner's data
can hold a 70-character code or a lower-case currency) and, when the
publisher was given the types its service may publish, its type against
that set. Either refusal is permanent for the consumer's outcome rules: a
handler that tries is dead-lettered with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nats.aio.client import Client

from waybill_contracts import Lane, Message, MessageContext, SubjectMap, encode, new_context
from waybill_contracts.envelope import HEADER_TRACEPARENT, HEADER_TRACESTATE, check_body
from waybill_runtime.bus.publish_acks import Outbound, PublishAcks, StoredAck
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.order_traces import OrderTrace, OrderTraces
from waybill_runtime.outcomes import PermanentError
from waybill_runtime.security.fact_ids import keyed_fact_id
from waybill_runtime.server_spans import adopt_order_trace
from waybill_runtime.telemetry import send_span, tracing_active


class NotAllowedToPublish(PermanentError):
    """A service tried to publish a message type it does not declare; nothing was sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """One message to publish, with what the publisher cannot work out by itself."""

    message: Message
    cause: MessageContext | None = None
    fact_id: str | None = None
    correlation_id: str | None = None
    lane: Lane | None = None
    """None: the cause's lane, standard without a cause (see waybill_contracts.lanes)."""


class Publisher:
    """Publishes messages of one service (its ``ce-source``) to JetStream."""

    def __init__(
        self,
        nc: Client,
        subjects: SubjectMap,
        *,
        service: str,
        metrics: MetricsRegistry | None = None,
        ack_timeout_s: float = 10.0,
        order_traces: OrderTraces | None = None,
        may_publish: frozenset[type[Message]] | None = None,
        fact_key: bytes | None = None,
    ) -> None:
        """``may_publish``: the message types this service may publish; None for any.
        ``fact_key``: keys the ids of observed facts (see :mod:`waybill_runtime.security.fact_ids`).
        """
        self._fact_key = fact_key
        self._acks = PublishAcks(nc)
        # Facts observed from outside join their order's trace (with an SDK only);
        # the service sets it once it has provisioned the bucket.
        self.order_traces = order_traces
        self._subjects = subjects
        self._service = service
        self._source = f"waybill/{service}"
        self._metrics = metrics
        self._ack_timeout_s = ack_timeout_s
        self._may_publish = may_publish

    @property
    def acks(self) -> PublishAcks:
        """The publisher's reply subscription, which the service's KV buckets share."""
        return self._acks

    def _prepare(
        self,
        message: Message,
        cause: MessageContext | None,
        fact_id: str | None,
        correlation_id: str | None,
        lane: Lane | None,
    ) -> tuple[str, dict[str, str], bytes, MessageContext]:
        """Everything to send ``message`` with, once it is known that it may be sent.

        :class:`NotAllowedToPublish` for a type outside ``may_publish``;
        :class:`~waybill_contracts.MalformedBody` naming the field for a value
        that breaks the contract (checked on the very body that is sent).
        """
        if self._may_publish is not None and type(message) not in self._may_publish:
            raise NotAllowedToPublish(
                f"{self._service} may not publish {type(message).__name__} "
                f"({message.ce_type()}): it is not among the types the service declares"
            )
        context = new_context(
            message,
            source=self._source,
            cause=cause,
            correlation_id=correlation_id,
            message_id=self._message_id(fact_id),
            lane=lane,
            # Carried on as is when no tracer provider makes a span of its own
            # (send_span then overwrites them with the new span's context).
            traceparent=cause.traceparent if cause is not None else None,
            tracestate=cause.tracestate if cause is not None else None,
        )
        encoded = encode(message, context, self._subjects)
        check_body(type(message), encoded.body)
        # encode() makes a new dict each time: ours to add trace headers to, no copy.
        return encoded.subject, encoded.headers, encoded.body, context

    def _message_id(self, fact_id: str | None) -> str | None:
        if fact_id is None or self._fact_key is None:
            return fact_id
        return keyed_fact_id(self._fact_key, fact_id)

    async def publish(
        self,
        message: Message,
        *,
        cause: MessageContext | None = None,
        fact_id: str | None = None,
        correlation_id: str | None = None,
        lane: Lane | None = None,
    ) -> MessageContext:
        """Publish and wait for JetStream's ack; returns the context the message went out with.

        The message travels on ``lane`` if given, else on its cause's lane
        (standard without a cause): an order that entered express stays express.

        A duplicate (same id within the stream's duplicate window) is acknowledged
        by JetStream without being stored again, which is what makes re-observed
        facts and redelivered handlers safe.
        """
        # No Outgoing built here: a frozen dataclass costs a call per field.
        subject, headers, body, context = self._prepare(
            message, cause, fact_id, correlation_id, lane
        )
        template = self._subjects.subject_template(subject)
        if tracing_active():
            first_of_order = await self._join_order_trace(cause, context, headers)
            with send_span(template, message_id=context.id, headers=headers):
                await self._acks.publish(subject, body, headers, timeout_s=self._ack_timeout_s)
            if first_of_order and self.order_traces is not None:
                trace = OrderTrace(headers[HEADER_TRACEPARENT], headers.get(HEADER_TRACESTATE))
                await self.order_traces.remember(context.correlation_id, trace)
        else:
            await self._acks.publish(subject, body, headers, timeout_s=self._ack_timeout_s)
        if self._metrics is not None:
            self._metrics.published(template).inc()
        return context

    async def _join_order_trace(
        self, cause: MessageContext | None, context: MessageContext, headers: dict[str, str]
    ) -> bool:
        """Put the order's trace into ``headers`` for a fact without a cause.

        True when the order has no trace yet: this message's becomes it.
        """
        if cause is not None or self.order_traces is None:
            return False
        known = await self.order_traces.trace_of(context.correlation_id)
        if known is not None:
            headers[HEADER_TRACEPARENT] = known.traceparent
            if known.tracestate:
                headers[HEADER_TRACESTATE] = known.tracestate
        # A webhook reporting this fact: its SERVER span joins the order's trace too
        # (or begins it, with this fact as its child).
        adopt_order_trace(headers)
        return known is None

    async def publish_many(self, batch: Sequence[Outgoing]) -> list[StoredAck]:
        """Pipelined bulk publish: all messages in flight at once, then every ack awaited.

        Raises the first failure after all acks have settled; messages whose
        ack did arrive are stored, so the caller can simply publish the whole
        batch again (their ids make the repeats duplicates). Every message is
        checked before the first is sent: one refused message sends nothing.
        """
        outbound: list[Outbound] = []
        for out in batch:
            subject, headers, body, context = self._prepare(
                out.message, out.cause, out.fact_id, out.correlation_id, out.lane
            )
            # The span marks each message's making (its context goes out in the
            # headers); the acks of the whole batch are awaited together below.
            with send_span(
                self._subjects.subject_template(subject), message_id=context.id, headers=headers
            ):
                outbound.append(Outbound(subject, body, headers))
        results = await self._acks.publish_many(outbound, timeout_s=self._ack_timeout_s)
        acks: list[StoredAck] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            acks.append(result)
        if self._metrics is not None:
            for sent in outbound:
                self._metrics.published(self._subjects.subject_template(sent.subject)).inc()
        return acks
