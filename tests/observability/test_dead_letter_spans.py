"""A message that fails to decode, or whose handler fails for good, leaves a span in its
trace: error status, the reason (a real nats-server, the runtime's consumer)."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NatsClient
from opentelemetry.trace import StatusCode

from tests.runtime.bus_helpers import release_command, send
from waybill_contracts import SubjectMap
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import PermanentError, TransientError
from waybill_runtime.service import Service
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.tracing import recorded_spans
from waybill_runtime.testing.waiting import eventually

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_undecodable_and_refused_messages_are_error_spans_in_their_trace(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")

    @service.handles(ReleaseToWarehouse)
    async def refuse(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        raise PermanentError("the warehouse does not know this site")

    subjects = SubjectMap(nats_prefix)
    subject = subjects.subject_for(ReleaseToWarehouse)
    with recorded_spans() as exporter:
        async with running_service(service, nats_url=nats_url, subject_prefix=nats_prefix):
            await nc.jetstream().publish(
                subject,
                b"\x00not json{",
                headers={
                    "ce-specversion": "1.0",
                    "ce-id": "garbage-1",
                    "ce-type": ReleaseToWarehouse.ce_type(),
                    # Any spelling: raw headers are read case-insensitively.
                    "Traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
                },
            )
            await send(nc, subjects, release_command("WH/OUT/9"))
            await eventually(
                lambda: dead_letters(nc, subjects),
                until=lambda found: len(found) == 2,
                what="two dead letters",
            )
        spans = [s for s in exporter.get_finished_spans() if s.name.startswith("dead_letter ")]
    by_reason = {dict(s.attributes or {})["waybill.dead_letter.reason"]: s for s in spans}
    assert set(by_reason) == {"invalid message", "permanent error"}
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert span.name == f"dead_letter {subjects.subject_template(subject)}"
    invalid = by_reason["invalid message"]
    assert f"{invalid.context.trace_id:032x}" == TRACE
    assert invalid.status.description is not None
    assert invalid.status.description.startswith("invalid message")
    refused = by_reason["permanent error"]
    assert str(dict(refused.attributes or {})["error.type"]).endswith("PermanentError")
    assert "does not know this site" in (refused.status.description or "")


async def test_a_failed_attempt_says_on_its_span_whether_it_is_retried(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    service = Service("wms-bridge")

    @service.handles(ReleaseToWarehouse)
    async def flaky(command: ReleaseToWarehouse, ctx: HandlerContext[Any]) -> None:
        raise TransientError("warehouse answered 503")

    subjects = SubjectMap(nats_prefix)
    with recorded_spans() as exporter:
        async with running_service(
            service,
            nats_url=nats_url,
            subject_prefix=nats_prefix,
            retry_backoff_s=(0.05,),
            max_deliver=3,
        ):
            await send(nc, subjects, release_command("WH/OUT/7"))
            await eventually(
                lambda: dead_letters(nc, subjects), until=lambda found: len(found) == 1
            )
        processed = [s for s in exporter.get_finished_spans() if s.name.startswith("process ")]
    events = sorted(
        (dict(e.attributes or {})["waybill.delivery.attempt"], e.name)
        for span in processed
        for e in span.events
        if e.name in ("retry", "dead_letter")
    )
    assert events == [(1, "retry"), (2, "retry"), (3, "dead_letter")]
