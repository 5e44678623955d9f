"""What the JSON API answers: orders, timeline entries and dead letters as documents."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from waybill_auditor.masking import mask_personal_data, mask_unreadable_text
from waybill_auditor.records import StoredMessage
from waybill_auditor.stages import Stage
from waybill_auditor.store import OrderRow
from waybill_runtime.json_input import decode_bounded
from waybill_runtime.personal_data import mask_text


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    """An order's stage, since when, and whether it has been there too long."""

    order_ref: str
    stage: Stage
    since: datetime
    stuck: bool
    stuck_after_s: float | None
    """The stage's deadline; none for final stages."""
    messages: int
    dead_letters: int
    last_seen: datetime


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event or command of an order, with its place in the causal chain."""

    id: str
    kind: str
    type: str
    time: datetime
    subject: str
    correlation_id: str | None
    causation_id: str | None
    source: str
    stream: str
    stream_sequence: int
    data: Any
    replayed_from: int | None = None
    """A replay: the sequence of the dead letter it put back."""
    replayed_by: str | None = None
    """A replay: the operator who replayed it."""
    unconsumed: bool = False
    """No installed service but the auditor consumes this type."""


class DeadLetterView(msgspec.Struct, frozen=True, kw_only=True):
    """A message some service gave up on, and why."""

    id: str
    service: str | None
    consumer: str | None
    reason: str | None
    error_type: str | None
    error_message: str | None
    attempts: int | None
    failed_at: datetime
    dlq_sequence: int
    original_id: str | None
    original_subject: str
    type: str
    subject: str
    order_ref: str | None
    correlation_id: str | None
    causation_id: str | None
    source: str
    data: Any


class Timeline(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the auditor knows about one order."""

    order_ref: str
    order: OrderView | None
    entries: list[TimelineEntry]
    dead_letters: list[DeadLetterView]


class OrdersPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of orders; ``next_cursor`` fetches the next one."""

    orders: list[OrderView]
    next_cursor: str | None


class DeadLettersPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of dead letters, newest first."""

    dead_letters: list[DeadLetterView]
    next_cursor: str | None


def body_data(body: bytes, *, mask: bool) -> Any:
    """A stored body as JSON (masked); as text (masked) when it cannot be shown as JSON.

    Any body renders: one that is not JSON, not UTF-8 (bytes escaped as
    ``\\xff``), or nested absurdly deep is shown as a string, which the
    response's JSON encoding escapes. A poisoned record never fails the page.
    """
    try:
        data: Any = decode_bounded(body, msgspec.json.decode)
    except msgspec.DecodeError:  # not JSON, or too deep (JsonTooDeep)
        text = body.decode("utf-8", errors="backslashreplace")
        return mask_unreadable_text(text) if mask else text
    return mask_personal_data(data) if mask else data


def order_view(row: OrderRow, *, deadlines: Mapping[Stage, float], now: datetime) -> OrderView:
    """``row`` with its stuck flag as of ``now``."""
    deadline = deadlines.get(row.stage)
    stuck = deadline is not None and (now - row.since).total_seconds() > deadline
    return OrderView(
        order_ref=row.order_ref,
        stage=row.stage,
        since=row.since,
        stuck=stuck,
        stuck_after_s=deadline,
        messages=row.messages,
        dead_letters=row.dead_letters,
        last_seen=row.last_seen,
    )


def timeline_entry(message: StoredMessage, *, mask: bool) -> TimelineEntry:
    """An event or command row as a timeline entry."""
    return TimelineEntry(
        id=message.id,
        kind=message.kind,
        type=message.ce_type,
        time=message.time,
        subject=message.subject,
        correlation_id=message.correlation_id,
        causation_id=message.causation_id,
        source=message.source,
        stream=message.stream,
        stream_sequence=message.stream_sequence,
        data=body_data(message.body, mask=mask),
        replayed_from=message.replayed_from,
        replayed_by=message.replayed_by,
        unconsumed=message.unconsumed,
    )


def dead_letter_view(message: StoredMessage, *, mask: bool) -> DeadLetterView:
    """A dead-letter row as the API shows it."""
    return DeadLetterView(
        id=message.id,
        service=message.dl_service,
        consumer=message.dl_consumer,
        reason=message.dl_reason,
        error_type=message.dl_error_type,
        error_message=(
            mask_text(message.dl_error_message)
            if mask and message.dl_error_message
            else message.dl_error_message
        ),
        attempts=message.dl_attempts,
        failed_at=message.time,
        dlq_sequence=message.stream_sequence,
        original_id=message.original_id,
        original_subject=message.nats_subject,
        type=message.ce_type,
        subject=message.subject,
        order_ref=message.order_ref,
        correlation_id=message.correlation_id,
        causation_id=message.causation_id,
        source=message.source,
        data=body_data(message.body, mask=mask),
    )
