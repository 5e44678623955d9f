"""Retention: the audit trail forgets what is older than ``WAYBILL_AUDIT_RETENTION_DAYS``, so it
does not grow for ever.

Messages (events, commands, dead letters) whose ``ce-time`` is older than the
cutoff are deleted, and so are orders nothing new was seen about since the
cutoff: an order still moving is kept whole, whatever its age. How is the
store's business (SQLite: small batches, each its own write; PostgreSQL: whole
days' partitions dropped). Unset (the default), nothing is ever deleted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from waybill_auditor.config import AuditorSettings
from waybill_auditor.store import Purged
from waybill_auditor.trail import TRAIL, AuditTrail
from waybill_runtime.periodic import every
from waybill_runtime.service import Runtime

log = logging.getLogger("waybill.auditor")

PURGE_EVERY_S = 3600.0
FIRST_PURGE_AFTER_S = 1.0


async def purge(trail: AuditTrail, *, before: datetime) -> Purged:
    """Delete what is older than ``before``; the trail's gauges are counted again after."""
    purged = await trail.store.purge(before=before)
    if purged.messages or purged.orders:
        await trail.load_counts()
    return purged


@contextlib.asynccontextmanager
async def retention_sweeper(runtime: Runtime[AuditorSettings]) -> AsyncIterator[None]:
    """Purge soon after start, then every hour, while retention is set."""
    days = runtime.settings.audit_retention_days
    if days is None:
        yield
        return
    trail = runtime.resource(TRAIL)

    async def work() -> None:
        cutoff = datetime.now().astimezone() - timedelta(days=days)
        purged = await purge(trail, before=cutoff)
        if purged.messages or purged.orders:
            log.info(
                "audit retention (%g days): deleted %d messages and %d orders older than %s",
                days,
                purged.messages,
                purged.orders,
                cutoff.isoformat(timespec="seconds"),
            )

    async with every(
        PURGE_EVERY_S, work, name="audit retention", first_after_s=FIRST_PURGE_AFTER_S
    ):
        yield
