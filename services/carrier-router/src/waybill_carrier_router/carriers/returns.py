"""Return labels at any carrier: the outbound shipment flagged as a return, cheapest rate bought.

A return is paid by the merchant and has no promised service level, so the
cheapest offer is the one to buy. Nothing here is carrier specific: each
client sends :attr:`ShipmentSpec.is_return` in its carrier's words, and a
return label is voided, found by reference and tracked like any other label
(:meth:`Carrier.void`, :meth:`Carrier.find_purchase`, :meth:`Carrier.track`).
As with any purchase there is no idempotency key: after a lost answer, look
the reference up before booking again.
"""

from __future__ import annotations

import msgspec

from waybill_carrier_router.carriers.model import (
    Carrier,
    CarrierRefused,
    LabelPurchase,
    ShipmentSpec,
)

__all__ = ["book_return"]


async def book_return(carrier: Carrier, outbound: ShipmentSpec) -> LabelPurchase:
    """Buy a return label for ``outbound`` (its addresses as shipped, its own reference)."""
    spec = msgspec.structs.replace(outbound, is_return=True)
    offers = await carrier.quote(spec)
    if not offers:
        # A carrier that quotes nothing for a return cannot carry it: asking again will not help.
        raise CarrierRefused(carrier.code, 200, "no rate offered for the return")
    cheapest = min(offers, key=lambda offer: (offer.amount, offer.delivery_days or 0))
    return await carrier.buy(cheapest, spec)
