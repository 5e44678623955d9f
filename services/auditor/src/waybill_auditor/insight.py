"""What the control tower shows besides single orders: stages at a glance, throughput, partner
health, and search. Read-only queries over the audit trail, one snapshot each.

Search looks only at what identifies an order without being personal: its
ref (any part of it), the customer's own reference and a tracking number
(exact values, as they appear in the stored bodies). Nobody finds an order
by a customer's name or address.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from waybill_auditor.partners import Partner
from waybill_auditor.stages import Stage
from waybill_auditor.store import ORDER_COLUMNS, AuditStore, OrderRow, order_from_row
from waybill_contracts import MESSAGE_TYPES, MessageKind, SubjectMap
from waybill_contracts.envelope import SOURCE_PREFIX

SEARCHED_FIELDS = ("customer_reference", "tracking_number")
"""Body fields whose exact value finds an order (besides its ref)."""

MAX_QUERY = 200


class StageCount(msgspec.Struct, frozen=True, kw_only=True):
    """How many orders are in a stage, and how long the longest has been there."""

    stage: Stage
    orders: int
    oldest_since: datetime


class PartnerFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One partner's service over a window: work sent, answers, failures, latency."""

    commands: int
    answers: int
    failures: int
    dead_letters: int
    mean_latency_s: float | None
    max_latency_s: float | None

    @property
    def error_rate(self) -> float:
        """Failures and dead letters per outcome (0 when nothing happened)."""
        outcomes = self.answers + self.dead_letters
        return (self.failures + self.dead_letters) / outcomes if outcomes else 0.0


def _marks(count: int) -> str:
    return ", ".join("?" * count)


async def stage_counts(store: AuditStore) -> list[StageCount]:
    """Orders per stage, in the stages' order."""

    def job(conn: sqlite3.Connection) -> list[StageCount]:
        rows = conn.execute(
            "SELECT stage, count(*), min(since_s) FROM orders GROUP BY stage"
        ).fetchall()
        found = {Stage(row[0]): (int(row[1]), float(row[2])) for row in rows}
        return [
            StageCount(
                stage=stage,
                orders=found[stage][0],
                oldest_since=datetime.fromtimestamp(found[stage][1], UTC),
            )
            for stage in Stage
            if stage in found
        ]

    return await store.read(job)


async def counts_by_type(
    store: AuditStore, types: Sequence[str], *, since: datetime
) -> dict[str, int]:
    """How many messages of each of ``types`` were sent since ``since`` (by ``ce-time``)."""

    def job(conn: sqlite3.Connection) -> dict[str, int]:
        rows = conn.execute(
            f"SELECT ce_type, count(*) FROM messages WHERE time_s >= ? "
            f"AND kind != 'dead_letter' AND ce_type IN ({_marks(len(types))}) GROUP BY ce_type",
            (since.timestamp(), *types),
        ).fetchall()
        counted = {str(row[0]): int(row[1]) for row in rows}
        return {t: counted.get(t, 0) for t in types}

    return await store.read(job)


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
    commands = _commands_of(partner, subjects)
    failures = partner.failure_types(subjects)
    source = SOURCE_PREFIX + partner.service.value
    at = since.timestamp()

    def job(conn: sqlite3.Connection) -> PartnerFigures:
        sent = conn.execute(
            f"SELECT count(*) FROM messages WHERE time_s >= ? AND kind = 'command' "
            f"AND ce_type IN ({_marks(len(commands))})",
            (at, *commands),
        ).fetchone()[0]
        answers, failed = conn.execute(
            f"SELECT count(*), coalesce(sum(ce_type IN ({_marks(len(failures))})), 0) "
            "FROM messages WHERE time_s >= ? AND kind = 'event' AND source = ?",
            (*failures, at, source),
        ).fetchone()
        dead = conn.execute(
            "SELECT count(*) FROM messages WHERE time_s >= ? AND kind = 'dead_letter' "
            "AND dl_service = ?",
            (at, partner.service.value),
        ).fetchone()[0]
        mean, longest = conn.execute(
            "SELECT avg(gap), max(gap) FROM (SELECT min(answer.time_s) - cause.time_s AS gap "
            "FROM messages AS answer JOIN messages AS cause ON cause.id = answer.causation_id "
            "WHERE answer.time_s >= ? AND answer.kind = 'event' AND answer.source = ? "
            "AND cause.kind = 'command' GROUP BY cause.id)",
            (at, source),
        ).fetchone()
        return PartnerFigures(
            commands=int(sent),
            answers=int(answers),
            failures=int(failed),
            dead_letters=int(dead),
            mean_latency_s=None if mean is None else max(0.0, float(mean)),
            max_latency_s=None if longest is None else max(0.0, float(longest)),
        )

    return await store.read(job)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_orders(store: AuditStore, text: str, *, limit: int = 50) -> list[OrderRow]:
    """Orders whose ref contains ``text``, or whose customer reference or tracking number is it."""
    needles = [
        msgspec.json.encode({field: text})[1:-1] for field in SEARCHED_FIELDS
    ]  # '"tracking_number":"1Z..."', as the stored bodies spell it

    def job(conn: sqlite3.Connection) -> list[OrderRow]:
        rows = conn.execute(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_ref LIKE ? ESCAPE '\\' "
            "OR order_ref IN (SELECT order_ref FROM messages WHERE order_ref IS NOT NULL "
            f"AND kind != 'dead_letter' AND ({' OR '.join('instr(body, ?) > 0' for _ in needles)}))"
            " ORDER BY order_ref LIMIT ?",
            (f"%{_like_escaped(text)}%", *needles, limit),
        ).fetchall()
        return [order_from_row(row) for row in rows]

    return await store.read(job)


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


def _trouble(row: sqlite3.Row) -> Trouble | None:
    at = datetime.fromtimestamp(row["time_s"], UTC)
    if row["kind"] == "dead_letter":
        text = f"{row['dl_reason'] or 'dead letter'} in {row['dl_service'] or 'a service'}"
        if row["dl_error_message"]:
            text += f": {row['dl_error_message']}"
        return Trouble(what="dead_letter", text=text, at=at)
    try:
        body = _decode_any(row["body"])
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
    if not refs:
        return {}

    def job(conn: sqlite3.Connection) -> dict[str, Trouble]:
        rows = conn.execute(
            "SELECT order_ref, kind, body, time_s, dl_reason, dl_service, dl_error_message "
            f"FROM messages WHERE order_ref IN ({_marks(len(refs))}) "
            "AND (kind = 'dead_letter' OR ce_type = ?) ORDER BY time_s DESC",
            (*refs, exception_type),
        ).fetchall()
        found: dict[str, Trouble] = {}
        for row in rows:
            if row["order_ref"] not in found and (trouble := _trouble(row)) is not None:
                found[row["order_ref"]] = trouble
        return found

    return await store.read(job)
