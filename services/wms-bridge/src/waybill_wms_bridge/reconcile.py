"""The reconciliation poll: what the WMS's webhooks failed to tell, read from its API.

WMS webhooks may be lost or late. Every round asks the WMS for the orders
updated since a watermark (kept in the "watermarks" bucket, read back a few
seconds early so a change committed while the last round ran is not missed)
and publishes the facts of every stage each order has reached. Facts already
published by a webhook or an earlier round carry the same ids and are not
stored again (:class:`~waybill_wms_bridge.ledger.FactLedger`).

The watermark is the WMS's own ``updated_at`` of the newest order handled, so
the two clocks never have to agree. It only moves past orders whose facts
are published: a round that fails half-way resumes from the last one done.

Orders Waybill released but the WMS never acknowledged are the release
command's business: the command is retried until the WMS answers (creating
or finding the order by ref), and an order the WMS did create while the
bridge missed the answer appears here, since its creation moves its
``updated_at`` past the watermark.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_contracts import ContractError
from waybill_wms_bridge.ledger import FactLedger
from waybill_wms_bridge.lifecycle import WarehouseFact, order_facts
from waybill_wms_bridge.settled import SettledOrders
from waybill_wms_bridge.wms_client import WmsClient
from waybill_wms_bridge.wms_wire import WmsOrder

__all__ = ["WATERMARK_KEY", "Feed", "Reconciler", "Watermark", "orders_feed"]

log = logging.getLogger("waybill.wms_bridge.reconcile")

WATERMARK_KEY = "wms-bridge.outbound-orders"
"""Key of the poll's watermark in the shared "watermarks" bucket (named after its owner)."""


@dataclass(frozen=True)
class Feed:
    """What one poll reads: the WMS records changed since a time, and the facts of each.

    Outbound orders (:func:`orders_feed`) and expected returns
    (:func:`~waybill_wms_bridge.expected_returns.returns_feed`) are polled the same way,
    each with its own watermark.
    """

    watermark_key: str
    changed_since: Callable[[datetime], Awaitable[list[Any]]]
    facts_of: Callable[[Any], tuple[list[WarehouseFact], str | None]]
    name_of: Callable[[Any], str]
    settled: Callable[[Any], bool] = lambda _record: False
    """Whether every fact of this very record is known to be out (skipped then)."""
    settle: Callable[[Any], None] = lambda _record: None
    """Called once every fact of a record is out."""


def orders_feed(client: WmsClient, settled: SettledOrders | None = None) -> Feed:
    """The outbound orders: the facts of every stage each reached.

    A snapshot ``settled`` already holds (a webhook brought it) is passed over.
    """
    settled = settled or SettledOrders()

    def facts_of(order: WmsOrder) -> tuple[list[WarehouseFact], str | None]:
        # Only the stages not yet out here (a webhook brought the others) are mapped.
        found = order_facts(order, settled.stages_out(order.client_order_ref))
        return found.facts, found.problem

    return Feed(
        watermark_key=WATERMARK_KEY,
        changed_since=client.orders_updated_since,
        facts_of=facts_of,
        name_of=lambda order: order.client_order_ref,
        settled=settled.has,
        settle=settled.add,
    )


class Watermark(msgspec.Struct, frozen=True, kw_only=True):
    """The WMS time up to which every order change has been reconciled."""

    updated_at: datetime


class Reconciler:
    """One reconciliation round per :meth:`run_once` call (scheduled by the service)."""

    def __init__(
        self,
        client: WmsClient,
        ledger: FactLedger,
        watermarks: KeyValue,
        *,
        overlap_s: float,
        lookback_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        feed: Feed | None = None,
    ) -> None:
        self._feed = feed or orders_feed(client)
        self._ledger = ledger
        self._kv = watermarks
        self._overlap = timedelta(seconds=overlap_s)
        self._lookback = timedelta(seconds=lookback_s)
        self._clock = clock

    async def watermark(self) -> tuple[datetime | None, int | None]:
        """The stored watermark and its revision; ``(None, None)`` before the first round."""
        try:
            entry = await self._kv.get(self._feed.watermark_key)
        except KeyNotFoundError:
            return None, None
        try:
            stored = msgspec.json.decode(entry.value or b"", type=Watermark)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            # Unreadable: start over from the look-back rather than stop polling for good.
            log.error("ignoring an unreadable reconciliation watermark: %s", error)
            return None, entry.revision
        return stored.updated_at, entry.revision

    async def run_once(self) -> int:
        """Reconcile the orders changed since the watermark; returns how many facts were new."""
        stored, revision = await self.watermark()
        since = stored - self._overlap if stored is not None else self._clock() - self._lookback
        orders = await self._feed.changed_since(since)
        reached = stored
        recovered = 0
        try:
            for order in orders:  # oldest change first
                if not self._feed.settled(order):
                    recovered += await self._reconcile(order)
                if reached is None or order.updated_at > reached:
                    reached = order.updated_at
        finally:
            if reached is not None and reached != stored:
                await self._save(reached, revision)
        if recovered:
            log.info(
                "reconciliation published %d fact(s) the webhooks had not brought (%d orders)",
                recovered,
                len(orders),
            )
        return recovered

    async def _reconcile(self, order: Any) -> int:
        """Publish the facts of ``order`` that are not out yet; returns how many were."""
        new = 0
        try:
            facts, problem = self._feed.facts_of(order)
            new = await self._ledger.publish_all(facts)
        except (ContractError, ValueError) as error:
            # The publisher refused a fact, naming the field (those before it are
            # stored), or the WMS record cannot be mapped at all.
            problem = f"the WMS data is not valid: {error}"
        if problem is not None:
            # Retrying cannot fix the WMS's data: say it loudly and move on.
            log.error("reconciling %s: %s", self._feed.name_of(order), problem)
        else:
            self._feed.settle(order)
        return new

    async def _save(self, reached: datetime, revision: int | None) -> None:
        value = msgspec.json.encode(Watermark(updated_at=reached))
        try:
            if revision is None:
                await self._kv.create(self._feed.watermark_key, value)
            else:
                await self._kv.update(self._feed.watermark_key, value, last=revision)
        except KeyWrongLastSequenceError:
            # Another replica moved it meanwhile; its round covers the same orders.
            log.debug("reconciliation watermark moved by another replica; keeping theirs")
