"""Returns at the warehouse (issue 20): parcels announced and called off, and what the dock
reports of them (``return.*`` webhooks) as ``ReturnReceived`` and ``ReturnInspected``.

The WMS keys an expected return by the client's ref, which is Waybill's
return id, and answers a replay of the same announcement with the return it
holds: announcing again is the recovery from a lost answer. Calling off a
return the WMS never heard of, or already called off, is done. A webhook
carries the return as it is now and is mapped to the facts of every step it
reached (an ``inspected`` return was received too), each with an id derived
from the return and the step, so repeats end as one stored event per fact.
"""

from __future__ import annotations

import logging

from waybill_contracts import fact_id
from waybill_contracts.events import ReturnInspected, ReturnReceived
from waybill_contracts.return_commands import CancelExpectedReturn, ExpectReturn
from waybill_contracts.returns import InspectedLine
from waybill_runtime.outcomes import PermanentError
from waybill_wms_bridge.lifecycle import UnmappableWmsData, WarehouseFact, wms_quantity
from waybill_wms_bridge.products import UnitCodes
from waybill_wms_bridge.reconcile import Feed
from waybill_wms_bridge.return_wire import (
    ReturnStatus,
    WmsReturn,
    WmsReturnLine,
    WmsReturnLineRequest,
    WmsReturnRequest,
)
from waybill_wms_bridge.wms_client import WmsClient

__all__ = ["RETURNS_WATERMARK_KEY", "ExpectedReturns", "return_facts", "returns_feed"]

log = logging.getLogger("waybill.wms_bridge.returns")

RETURNS_WATERMARK_KEY = "wms-bridge.expected-returns"
"""Key of the returns poll's watermark in the "watermarks" bucket."""


def return_fact_id(return_id: str, step: str) -> str:
    """The id of the fact "return ``return_id`` reached ``step`` at the warehouse"."""
    return fact_id("wms-bridge", "return", return_id, step)


class ExpectedReturns:
    """Executes ``ExpectReturn`` and ``CancelExpectedReturn`` against the WMS."""

    def __init__(self, client: WmsClient, *, units: UnitCodes, default_warehouse: str) -> None:
        self._client = client
        self._units = units
        self._default_warehouse = default_warehouse

    def request_for(self, command: ExpectReturn) -> WmsReturnRequest:
        """The WMS's announcement of the parcel (units in the WMS's codes)."""
        lines = []
        for line in command.lines:
            code = self._units.code_of(line.quantity.uom)
            if code is None:
                raise PermanentError(
                    f"return {command.return_id} line {line.line_no}: the unit "
                    f"{line.quantity.uom!r} has no WMS code (set WAYBILL_WMS_UNIT_CODES)"
                )
            lines.append(
                WmsReturnLineRequest(
                    line_no=line.line_no, sku=line.sku, qty=float(line.quantity.value), uom=code
                )
            )
        return WmsReturnRequest(
            client_return_ref=command.return_id,
            warehouse=command.warehouse or self._default_warehouse,
            lines=lines,
            tracking_number=command.tracking_number,
            carrier=command.carrier,
            original_order_ref=command.order_ref,
            reason="; ".join(line.reason for line in command.lines if line.reason),
        )

    async def expect(self, command: ExpectReturn) -> WmsReturn:
        """Announce the parcel (the WMS answers a replay with the return it holds)."""
        return await self._client.expect_return(self.request_for(command))

    async def cancel(self, command: CancelExpectedReturn) -> WmsReturn | None:
        """Call the return off; None when the WMS never expected it."""
        found = await self._client.find_return(command.return_id)
        if found is None:
            log.info(
                "return %s was never announced to the WMS: nothing to call off", command.return_id
            )
            return None
        if found.status == ReturnStatus.CANCELLED:
            return found
        return await self._client.cancel_return(found.return_id)


def _inspected_line(line: WmsReturnLine, units: UnitCodes) -> InspectedLine:
    if line.line_no < 1:
        raise UnmappableWmsData(f"return line {line.sku} has no line number")
    uom = units.name_of(line.uom)
    return InspectedLine(
        line_no=line.line_no,
        sku=line.sku,
        resellable=wms_quantity(line.qty_resellable, uom),
        damaged=wms_quantity(line.qty_damaged, uom),
        missing=wms_quantity(line.qty_missing, uom),
    )


def return_facts(found: WmsReturn, units: UnitCodes) -> list[WarehouseFact]:
    """The facts of every step the return reached at the dock, oldest first."""
    facts: list[WarehouseFact] = []
    if found.received_at is not None:
        received = ReturnReceived(
            return_id=found.client_return_ref,
            order_ref=found.original_order_ref or None,
            warehouse_return_id=found.return_id,
            tracking_number=found.tracking_number,
            received_at=found.received_at,
        )
        step = "received"
        facts.append(
            WarehouseFact(
                id=return_fact_id(found.client_return_ref, step),
                message=received,
                stage=f"return_{step}",
            )
        )
    if found.status == ReturnStatus.INSPECTED and found.inspected_at is not None:
        if not found.lines:
            raise UnmappableWmsData(f"inspected return {found.client_return_ref} has no lines")
        inspected = ReturnInspected(
            return_id=found.client_return_ref,
            order_ref=found.original_order_ref or None,
            warehouse_return_id=found.return_id,
            lines=tuple(_inspected_line(line, units) for line in found.lines),
            inspected_at=found.inspected_at,
        )
        step = "inspected"
        facts.append(
            WarehouseFact(
                id=return_fact_id(found.client_return_ref, step),
                message=inspected,
                stage=f"return_{step}",
            )
        )
    return facts


def returns_feed(client: WmsClient, units: UnitCodes) -> Feed:
    """The expected returns, for the reconciliation poll: what lost ``return.*`` webhooks
    never told."""
    return Feed(
        watermark_key=RETURNS_WATERMARK_KEY,
        changed_since=client.returns_updated_since,
        facts_of=lambda found: (return_facts(found, units), None),
        name_of=lambda found: found.client_return_ref,
    )
