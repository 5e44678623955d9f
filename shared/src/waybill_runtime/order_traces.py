"""Where each order's trace lives, so facts observed from outside join it.

A message made while handling another continues that message's trace. A fact
observed from outside (a partner's webhook, a poll) has no such cause: left
alone, every webhook would start a trace of its own and one order would be
scattered over a dozen traces. So the first message of an order published
without a cause (its release, seen in Odoo) records its trace context under
the order's correlation id in the ``traces`` bucket, and later cause-less
messages of the same order continue that trace, whichever service sends them.

Only with a tracer provider (the SDK) installed: without one there are no
traces to keep, and nothing here runs. Tracing never fails a publish: a
bucket that cannot be read or written costs the trace, not the message.
"""

from __future__ import annotations

import logging

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_runtime.idempotency import kv_key

log = logging.getLogger("waybill.telemetry")


class OrderTrace(msgspec.Struct, frozen=True):
    """The W3C trace context an order's messages continue."""

    traceparent: str
    tracestate: str | None = None


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(OrderTrace).decode


class OrderTraces:
    """The ``traces`` bucket: one trace context per correlation id (per order)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def trace_of(self, correlation_id: str) -> OrderTrace | None:
        """The trace the order's messages continue; None if it has none (yet)."""
        try:
            entry = await self._kv.get(kv_key(correlation_id))
        except KeyNotFoundError:
            return None
        except Exception as error:
            log.warning("cannot read the trace of %s (%s)", correlation_id, error)
            return None
        if entry.value is None:
            return None
        try:
            return _decode(entry.value)
        except msgspec.DecodeError:
            log.warning("the trace kept for %s is unreadable; starting a new one", correlation_id)
            return None

    async def remember(self, correlation_id: str, trace: OrderTrace) -> None:
        """Record ``trace`` as the order's, unless another message recorded one first."""
        try:
            await self._kv.create(kv_key(correlation_id), _encode(trace))
        except KeyWrongLastSequenceError:
            pass  # a concurrent first message won; later messages follow its trace
        except Exception as error:
            log.warning("cannot record the trace of %s (%s)", correlation_id, error)
