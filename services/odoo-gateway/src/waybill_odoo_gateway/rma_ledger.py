"""What RMAs took of a delivery before Odoo has their return pickings.

An RMA is a ``ReturnRequested`` without a return picking: Odoo learns of it
only when the orchestrator's ``CreateReturnInOdoo`` arrives. Until then its
quantities are kept here, per delivery, in the gateway's ``workflow`` bucket
(``rma.<picking id>``: RMA id -> SKU -> quantity), so a second RMA of the same
order cannot return the same goods again. An RMA whose marked return picking
Odoo has counts there instead (never twice). Written by compare-and-set: two
replicas taking RMAs of one order at once cannot both take the last units.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_odoo_gateway.deliveries import Picking
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.return_pickings import find_return
from waybill_runtime.outcomes import RetryLater

__all__ = ["RMA_BUCKET", "RmaLedger"]

RMA_BUCKET = "workflow"

_Taken = dict[str, dict[str, str]]
"""RMA id -> SKU -> quantity (decimal text)."""


class RmaLedger:
    """The RMAs of one delivery not yet in Odoo, read once and written back by CAS."""

    def __init__(self, bucket: KeyValue, delivery: Picking) -> None:
        self._bucket = bucket
        self._delivery = delivery
        self._key = f"rma.{delivery.id}"
        self._taken: _Taken = {}
        self._revision = 0

    async def load(self) -> RmaLedger:
        try:
            entry = await self._bucket.get(self._key)
        except KeyNotFoundError:
            return self
        self._taken = msgspec.json.decode(entry.value or b"{}", type=_Taken)
        self._revision = entry.revision or 0
        return self

    async def pending(self, odoo: OdooClient, *, besides: str) -> dict[str, Decimal]:
        """By SKU, what RMAs other than ``besides`` (the one asking: again, after a crash
        before it was published) took that Odoo has no return picking of yet."""
        totals: dict[str, Decimal] = {}
        for rma_id, lines in self._taken.items():
            if (
                rma_id == besides
                or await find_return(odoo, rma_id, self._delivery.name) is not None
            ):
                continue  # Odoo's return moves count it
            for sku, quantity in lines.items():
                totals[sku] = totals.get(sku, Decimal(0)) + Decimal(quantity)
        return totals

    async def awaiting_picking(
        self, odoo: OdooClient, lines: Iterable[tuple[str, Decimal]]
    ) -> str | None:
        """The RMA of exactly ``lines`` (SKU, quantity) that Odoo has no marked return
        picking of yet, if there is one.

        Odoo's return wizard makes an RMA's picking under its own origin (``Return of
        WH/OUT/00001``) and the gateway marks it with the RMA right after, in a second
        call: a webhook or a poll in between sees what looks like a return an Odoo user
        made. With the lines of an RMA still waiting for its picking, it is that RMA's
        picking about to be marked (or, if the mark never comes, the one the RMA's retry
        adopts), not a second return of the same goods.
        """
        wanted = _by_sku(lines)
        for rma_id, taken in self._taken.items():
            if _by_sku((sku, Decimal(q)) for sku, q in taken.items()) != wanted:
                continue
            if await find_return(odoo, rma_id, self._delivery.name) is None:
                return rma_id
        return None

    async def take(self, rma_id: str, lines: dict[str, Decimal]) -> None:
        """Record the RMA's quantities; another writer since :meth:`load` means asking again."""
        taken = {**self._taken, rma_id: {sku: str(q) for sku, q in lines.items()}}
        try:
            await self._bucket.update(self._key, msgspec.json.encode(taken), last=self._revision)
        except KeyWrongLastSequenceError:
            raise RetryLater(
                f"another RMA of {self._delivery.name} was taken at the same moment"
            ) from None
        self._taken = taken


def _by_sku(lines: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for sku, quantity in lines:
        totals[sku] = totals.get(sku, Decimal(0)) + quantity
    return {sku: quantity.normalize() for sku, quantity in totals.items()}
