"""The audit store: what the auditor asks of its trail, whichever database holds it.

Two implementations: SQLite (:mod:`waybill_auditor.sqlite_store`, one file,
the embedded default) and PostgreSQL (:mod:`waybill_auditor.postgres_store`,
several replicas on one database). The API, the control tower and retention
go through :class:`AuditStore` only; each implementation keeps its own SQL.

Recording is idempotent by message id in both: a redelivered or replayed
message is recognised and changes nothing. Every new row is told to the
store's ``on_change`` callback once on every auditor reading that store
(PostgreSQL tells the other replicas too), which keeps the metrics and the
control tower's live pages current.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import msgspec

from waybill_auditor.config import AuditorSettings
from waybill_auditor.records import AuditRecord, StoredMessage
from waybill_auditor.stages import Stage
from waybill_runtime.errors import UserFacingError
from waybill_runtime.outcomes import TransientError


class AuditDatabaseError(UserFacingError):
    """The audit database cannot be opened or is not one this auditor can use."""


class AuditDatabaseBusy(TransientError):
    """The database refused a write (locked, full, I/O, gone): the message is redelivered later."""


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    """An order's current stage, since when, and how much the auditor has seen of it."""

    order_ref: str
    stage: Stage
    since: datetime
    messages: int
    dead_letters: int
    last_seen: datetime


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """What recording one message did."""

    new: bool
    stage_before: Stage | None = None
    stage_after: Stage | None = None


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One new row of the trail, as every auditor on the store is told of it."""

    kind: str
    type: str
    order_ref: str | None
    stage_before: Stage | None = None
    stage_after: Stage | None = None
    unconsumed: bool = False


RESYNC = Change(kind="resync", type="", order_ref=None)
"""Told when rows may have been missed (a replica's listening connection was lost a while):
count again, reload the pages."""


def change_of(record: AuditRecord, recorded: Recorded) -> Change:
    """The change a newly stored ``record`` made."""
    return Change(
        kind=record.kind,
        type=record.ce_type,
        order_ref=record.order_ref,
        stage_before=recorded.stage_before,
        stage_after=recorded.stage_after,
        unconsumed=record.unconsumed,
    )


OnChange = Callable[[Change], None]


class Purged(msgspec.Struct, frozen=True, kw_only=True):
    """What one purge deleted."""

    messages: int = 0
    orders: int = 0


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


@dataclass(frozen=True, kw_only=True)
class OrdersFilter:
    """Which orders to list: by stage, only the stuck ones, one page after a cursor."""

    stages: tuple[Stage, ...] = ()
    stuck_only: bool = False
    limit: int = 100
    after: tuple[datetime, str] | None = None


Timeline = tuple[OrderRow | None, list[StoredMessage], list[StoredMessage]]


def overdue(
    chosen: OrdersFilter, deadlines: Mapping[Stage, float], now: datetime
) -> list[tuple[Stage, float]]:
    """For a stuck-only listing: each stage asked for and the ``since`` (epoch s) it is late by."""
    return [
        (stage, now.timestamp() - seconds)
        for stage, seconds in deadlines.items()
        if not chosen.stages or stage in chosen.stages
    ]


class AuditStore(Protocol):
    """The audit trail's database."""

    location: str
    """Where it is, for messages (a path, or a URL without its password)."""

    async def open(self) -> None:
        """Create or migrate the schema, then start serving."""

    async def close(self) -> None:
        """Finish queued work and close the connections."""

    # -- writing ---------------------------------------------------------------

    async def record(self, record: AuditRecord, *, now: datetime | None = None) -> Recorded:
        """Store ``record`` unless its id is stored already; update its order's stage.

        :class:`AuditDatabaseBusy` when the database refuses the write.
        """

    async def heartbeat(self) -> None:
        """Write one row: proves the database takes writes now."""

    async def purge(self, *, before: datetime) -> Purged:
        """Forget messages older than ``before`` and orders nothing was seen about since."""

    # -- reading ---------------------------------------------------------------

    async def order(self, order_ref: str) -> OrderRow | None:
        """The order's stage row, or None if no message about it was recorded."""

    async def messages_of(self, order_ref: str, *, dead_letters: bool) -> list[StoredMessage]:
        """Events and commands (or dead letters) about ``order_ref`` by order or correlation."""

    async def timeline(self, order_ref: str) -> Timeline:
        """The order's row, messages and dead letters, read together (one snapshot)."""

    async def orders(
        self, chosen: OrdersFilter, *, deadlines: Mapping[Stage, float], now: datetime
    ) -> list[OrderRow]:
        """Orders oldest-in-stage first; up to ``limit + 1`` so the caller sees if more exist."""

    async def dead_letters(
        self,
        *,
        service: str | None = None,
        order_ref: str | None = None,
        before_sequence: int | None = None,
        limit: int = 100,
    ) -> list[StoredMessage]:
        """Dead letters, newest first; up to ``limit + 1`` so the caller sees if more exist."""

    async def counts(self) -> tuple[dict[str, int], dict[Stage, int]]:
        """Rows stored per kind, and orders per stage (for the metrics)."""

    async def stage_counts(self) -> list[StageCount]:
        """Orders per stage with the oldest ``since``, in the stages' order."""

    async def counts_by_type(self, types: Sequence[str], *, since: datetime) -> dict[str, int]:
        """Events and commands of each of ``types`` sent since ``since`` (by ``ce-time``)."""

    async def partner_figures(
        self,
        *,
        commands: Sequence[str],
        failures: Sequence[str],
        source: str,
        service: str,
        since: datetime,
    ) -> PartnerFigures:
        """What one service was asked (``commands``) and answered (events from ``source``)."""

    async def search_orders(
        self, text: str, *, body_needles: Sequence[bytes], limit: int
    ) -> list[OrderRow]:
        """Orders whose ref contains ``text`` or one of whose bodies holds a needle."""

    async def troubles_of(self, refs: Sequence[str], *, exception_type: str) -> list[StoredMessage]:
        """The dead letters and ``exception_type`` events of ``refs``, newest first."""

    async def latest_per_subject(self, ce_type: str) -> list[StoredMessage]:
        """The newest event of ``ce_type`` for each of its subjects (business keys).

        ``ce_type`` is one of :data:`PER_SUBJECT_TYPES` (ValueError otherwise).
        """


PER_SUBJECT_TYPES: frozenset[str] = frozenset(
    {
        "io.waybill.partner.circuit_changed.v1",
        "io.waybill.inventory.adjustment_held.v1",
        "io.waybill.inventory.adjustment_applied.v1",
        "io.waybill.inventory.reconciled.v1",
        "io.waybill.product.sync_completed.v1",
        "io.waybill.product.synced.v1",
        "io.waybill.product.changed.v1",
        "io.waybill.return.requested.v1",
        "io.waybill.return.label_booked.v1",
        "io.waybill.return.label_booking_failed.v1",
        "io.waybill.return.label_voided.v1",
        "io.waybill.return.parcel_overdue.v1",
        "io.waybill.return.received.v1",
        "io.waybill.return.inspected.v1",
        "io.waybill.return.stock_posted.v1",
        "io.waybill.return.credit_note_refused.v1",
        "io.waybill.return.credit_note_issued.v1",
        "io.waybill.return.cancelled.v1",
        "io.waybill.return.completed.v1",
    }
)
"""The ce-types read as "the newest event per subject" (breakers, stock, product syncs,
returns): SQLite's index by type and subject holds these only (database.MIGRATIONS, 7), not
the two dozen rows of every order. A type read so is added here and to a new schema step
that makes that index again."""


def read_per_subject(ce_type: str) -> str:
    """``ce_type``, checked to be one the stores read per subject."""
    if ce_type not in PER_SUBJECT_TYPES:
        raise ValueError(f"{ce_type} is not read per subject: add it to PER_SUBJECT_TYPES")
    return ce_type


def like_escaped(text: str) -> str:
    """``text`` for a LIKE pattern with backslash as the escape: its own % and _ literal."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def page_of(rows: Sequence[Any], limit: int) -> tuple[list[Any], bool]:
    """The first ``limit`` rows, and whether there were more."""
    return list(rows[:limit]), len(rows) > limit


def store_for(settings: AuditorSettings, on_change: OnChange | None = None) -> AuditStore:
    """The store the settings name: PostgreSQL for a database URL, else the SQLite file."""
    if settings.audit_database_url:
        from waybill_auditor.postgres_store import PostgresAuditStore

        return PostgresAuditStore(settings.audit_database_url, on_change=on_change)
    from waybill_auditor.sqlite_store import SqliteAuditStore, linger_for

    return SqliteAuditStore(
        settings.database_path(),
        on_change=on_change,
        sync_always=settings.audit_sync_always,
        linger=linger_for(settings.consumer_concurrency),
    )
