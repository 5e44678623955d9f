"""Audit records for the store and API tests, built as the auditor builds them from the bus."""

from __future__ import annotations

from datetime import timedelta

from tests.services.auditor.journey import T0, Journey, for_order
from waybill_auditor.records import AuditRecord, message_record
from waybill_contracts import Message, MessageContext, SubjectMap, encode
from waybill_contracts.events import OrderReleased, WarehouseOrderPicked
from waybill_runtime.bus.dead_letters import DeadLetter, StoredDeadLetter

SUBJECTS = SubjectMap("audit")


def record_of(message: Message, context: MessageContext, sequence: int = 1) -> AuditRecord:
    return message_record(
        message,
        context,
        subjects=SUBJECTS,
        nats_subject=SUBJECTS.subject_for(type(message)),
        stream_sequence=sequence,
    )


def released(ref: str, minutes: float = 0) -> AuditRecord:
    journey = Journey(ref)
    message = for_order(OrderReleased, ref)
    return record_of(message, journey.add(message, minutes=minutes))


def dead_letter(
    sequence: int, *, service: str = "orchestrator", ref: str = "WH/OUT/7"
) -> StoredDeadLetter:
    message = for_order(WarehouseOrderPicked, ref)
    context = Journey(ref).add(message)
    encoded = encode(message, context, SUBJECTS)
    return StoredDeadLetter(
        sequence=sequence,
        letter=DeadLetter(
            service=service,
            consumer=f"{service}-events",
            reason="retries exhausted",
            error_type="TimeoutError",
            error_message="odoo did not answer",
            attempts=8,
            failed_at=T0 + timedelta(minutes=sequence),
            original_subject=encoded.subject,
            original_headers=encoded.headers,
            original_body=encoded.body,
            original_stream=SUBJECTS.events_stream.name,
            original_sequence=100 + sequence,
        ),
    )
