"""Consumer lag: how far each service's durable consumer is behind on the events and commands
streams, as JetStream reports it (the auditor may list their consumers; see its declaration)."""

from __future__ import annotations

import logging

import msgspec
from nats.js.client import JetStreamContext

from waybill_contracts import SubjectMap

log = logging.getLogger("waybill.auditor")


class ConsumerLag(msgspec.Struct, frozen=True, kw_only=True):
    """One durable consumer's backlog."""

    stream: str
    durable: str
    pending: int
    """Messages in the stream it has not been given yet."""
    ack_pending: int
    """Given, not yet settled."""
    redelivered: int


async def consumer_lag(js: JetStreamContext, subjects: SubjectMap) -> list[ConsumerLag] | None:
    """Every durable consumer's lag, largest first; None when JetStream cannot be asked now."""
    lags: list[ConsumerLag] = []
    try:
        for stream in (subjects.events_stream, subjects.commands_stream):
            for info in await js.consumers_info(stream.name):
                if info.config.durable_name is None:
                    continue
                lags.append(
                    ConsumerLag(
                        stream=stream.name,
                        durable=info.config.durable_name,
                        pending=info.num_pending or 0,
                        ack_pending=info.num_ack_pending or 0,
                        redelivered=info.num_redelivered or 0,
                    )
                )
    except Exception as error:  # the page shows "unavailable"; the reason goes to the log
        log.warning("cannot read consumer lag: %s: %s", type(error).__name__, error)
        return None
    return sorted(lags, key=lambda lag: (-(lag.pending + lag.ack_pending), lag.durable))
