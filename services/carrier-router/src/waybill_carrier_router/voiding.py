"""Voiding a bought label (compensation for a cancelled order), once per shipment.

The carrier's id of the purchase comes from the command, else from what the
router stored when it booked, else from a lookup by Waybill's reference.
Both carriers treat a second void of one label as harmless, so a void whose
answer was lost is simply made again. A carrier that refuses (the parcel was
scanned already) is a fact, not a failure of the command: the void ends in a
:class:`VoidRefusal`, announced as ``ShipmentVoidRefused`` so the
orchestrator puts it in front of a person. A label nobody bought (nothing to
void) is a bad command and is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from waybill_carrier_router.booking import carrier_reference_for
from waybill_carrier_router.carriers.model import CarrierRefused
from waybill_carrier_router.fleet import CarrierFleet
from waybill_carrier_router.tracking_book import TrackingBook
from waybill_contracts.commands import VoidShipment
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.outcomes import InvalidMessage, PermanentError

__all__ = ["LabelToVoid", "ShipmentVoider", "VoidReceipt", "VoidRefusal"]


class VoidReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """What is remembered of a void."""

    carrier_reference: str
    voided_at: datetime


@dataclass(frozen=True, kw_only=True)
class LabelToVoid:
    """A bought label to void: an outbound shipment's or a return label."""

    shipment_id: str
    carrier: str
    tracking_number: str
    carrier_reference: str | None = None


@dataclass(frozen=True)
class VoidRefusal:
    """The carrier answered no: the label stays bought (and billed)."""

    reason: str
    refused_at: datetime


class _Refused(Exception):
    """The carrier refused the void itself (not a lookup before it)."""

    def __init__(self, refusal: VoidRefusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


def _now() -> datetime:
    return datetime.now(UTC)


class ShipmentVoider:
    """Voids labels with the fleet, once per shipment."""

    def __init__(
        self,
        *,
        fleet: CarrierFleet,
        tracking: TrackingBook,
        voids: OnceOnly[VoidReceipt],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._fleet = fleet
        self._tracking = tracking
        self._voids = voids
        self._clock = clock

    async def void(self, command: VoidShipment) -> VoidReceipt | VoidRefusal:
        """Void ``command``'s label (or return the earlier void of it), or say the carrier won't."""
        return await self.void_label(
            LabelToVoid(
                shipment_id=command.shipment_id,
                carrier=command.carrier,
                tracking_number=command.tracking_number,
                carrier_reference=command.carrier_reference,
            )
        )

    async def void_label(self, command: LabelToVoid) -> VoidReceipt | VoidRefusal:
        """Void a label, outbound or return (``shipment_id``: the purchase's id in Waybill)."""
        if not self._fleet.knows(command.carrier):
            raise InvalidMessage(
                f"cannot void {command.tracking_number}: {command.carrier!r} is not a carrier "
                "the router books with"
            )

        async def void_at_carrier() -> VoidReceipt:
            reference = await self._carrier_reference(command)
            try:
                await self._fleet.void(command.carrier, reference)
            except CarrierRefused as refused:
                raise _Refused(VoidRefusal(str(refused), self._clock())) from refused
            return VoidReceipt(carrier_reference=reference, voided_at=self._clock())

        # Voiding twice is harmless at the carrier, so an interrupted void is redone;
        # a refused void leaves no result behind, so asking again asks the carrier again.
        try:
            receipt = await self._voids.run(
                f"void:{command.shipment_id}", void_at_carrier, recover=void_at_carrier
            )
        except _Refused as refused:
            return refused.refusal
        # A voided label has no tracking to reconcile.
        await self._tracking.stop_tracking(command.carrier, command.tracking_number)
        return receipt

    async def _carrier_reference(self, command: LabelToVoid) -> str:
        if command.carrier_reference:
            return command.carrier_reference
        tracked = await self._tracking.find(command.carrier, command.tracking_number)
        if tracked is not None and tracked.carrier_reference:
            return tracked.carrier_reference
        found = await self._fleet.find_purchase(
            command.carrier, carrier_reference_for(command.shipment_id)
        )
        if found is None or found.tracking_number != command.tracking_number:
            raise PermanentError(
                f"{command.carrier} has no label {command.tracking_number} bought for "
                f"shipment {command.shipment_id}: nothing to void"
            )
        return found.carrier_reference
