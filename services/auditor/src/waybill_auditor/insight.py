"""What the control tower shows besides single orders: stages at a glance, throughput, partner
health, and search. Read-only queries over the audit trail, one snapshot each.

Search looks only at what identifies an order without being personal: its
ref (any part of it), the customer's own reference and a tracking number
(exact values, as they appear in the stored bodies). Nobody finds an order
by a customer's name or address.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from waybill_auditor.partners import Partner
from waybill_auditor.records import StoredMessage
from waybill_auditor.store import AuditStore, OrderRow, PartnerFigures, StageCount
from waybill_contracts import MESSAGE_TYPES, MessageKind, SubjectMap
from waybill_contracts.envelope import SOURCE_PREFIX

__all__ = [
    "PartnerFigures",
    "StageCount",
    "Trouble",
    "counts_by_type",
    "latest_troubles",
    "partner_figures",
    "search_orders",
    "stage_counts",
]

SEARCHED_FIELDS = ("customer_reference", "tracking_number")
"""Body fields whose exact value finds an order (besides its ref)."""

MAX_QUERY = 200


async def stage_counts(store: AuditStore) -> list[StageCount]:
    """Orders per stage, in the stages' order."""
    return await store.stage_counts()


async def counts_by_type(
    store: AuditStore, types: Sequence[str], *, since: datetime
) -> dict[str, int]:
    """How many messages of each of ``types`` were sent since ``since`` (by ``ce-time``)."""
    return await store.counts_by_type(types, since=since)


def _commands_of(partner: Partner, subjects: SubjectMap) -> tuple[str, ...]:
    return tuple(
        subjects.ce_type_for(t)
        for t in MESSAGE_TYPES
        if t.kind is MessageKind.COMMAND and getattr(t, "service", None) == partner.service
    )


async def partner_figures(
    store: AuditStore, partner: Partner, subjects: SubjectMap, *, since: datetime
) -> PartnerFigures:
    """What ``partner``'s service was asked and answered since ``since``.

    Latency is from a command to the first message the service published in
    answer to it (its causation id), as the messages' own clocks say.
    """
    return await store.partner_figures(
        commands=_commands_of(partner, subjects),
        failures=partner.failure_types(subjects),
        source=SOURCE_PREFIX + partner.service.value,
        service=partner.service.value,
        since=since,
    )


async def search_orders(store: AuditStore, text: str, *, limit: int = 50) -> list[OrderRow]:
    """Orders whose ref contains ``text``, or whose customer reference or tracking number is it."""
    needles = [
        msgspec.json.encode({field: text})[1:-1] for field in SEARCHED_FIELDS
    ]  # '"tracking_number":"1Z..."', as the stored bodies spell it
    return await store.search_orders(text, body_needles=needles, limit=limit)


class Trouble(msgspec.Struct, frozen=True, kw_only=True):
    """The latest thing that went wrong with an order: an ops exception or a dead letter."""

    what: str
    """``exception`` or ``dead_letter``."""
    text: str
    """The exception's summary, or the dead letter's reason and error (masked by the caller)."""
    at: datetime
    exception_id: str | None = None
    order_held: bool = False


_decode_any = msgspec.json.Decoder().decode


def _trouble(row: StoredMessage) -> Trouble | None:
    at = row.time.astimezone(UTC)
    if row.kind == "dead_letter":
        text = f"{row.dl_reason or 'dead letter'} in {row.dl_service or 'a service'}"
        if row.dl_error_message:
            text += f": {row.dl_error_message}"
        return Trouble(what="dead_letter", text=text, at=at)
    try:
        body = _decode_any(row.body)
    except msgspec.DecodeError:
        return None
    if not isinstance(body, dict):
        return None
    return Trouble(
        what="exception",
        text=str(body.get("summary") or body.get("code") or "exception"),
        at=at,
        exception_id=str(body.get("exception_id") or "") or None,
        order_held=bool(body.get("order_held")),
    )


async def latest_troubles(
    store: AuditStore, refs: Sequence[str], *, exception_type: str
) -> dict[str, Trouble]:
    """For each of ``refs``, its latest exception or dead letter (orders without either: absent)."""
    found: dict[str, Trouble] = {}
    for row in await store.troubles_of(refs, exception_type=exception_type):
        ref = row.order_ref
        if ref is not None and ref not in found and (trouble := _trouble(row)) is not None:
            found[ref] = trouble
    return found
