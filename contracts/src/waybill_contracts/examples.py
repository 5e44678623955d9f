"""A realistic example of every message type, one order's journey through the mesh.

Used in the AsyncAPI export, in the documentation and by tests anywhere in
Waybill that need a valid message without building one field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import TypeVar, cast

from waybill_contracts import commands as cmd
from waybill_contracts import events as evt
from waybill_contracts import operations as ops
from waybill_contracts import queries as qry
from waybill_contracts import return_commands as rcmd
from waybill_contracts.catalog import not_in_catalog
from waybill_contracts.messages import Message
from waybill_contracts.model import (
    Address,
    DeliveryMethod,
    Dimensions,
    FulfilledLine,
    InventorySystem,
    Milestone,
    MilestoneCode,
    Money,
    NotificationChannel,
    Order,
    OrderLine,
    Parcel,
    ParcelItem,
    Party,
    PickedLine,
    Priority,
    Product,
    ProductRejection,
    Quantity,
    ServiceLevel,
    Shipment,
    StockAdjustment,
    StockDiscrepancy,
    StockLevel,
)
from waybill_contracts.returns import CreditedLine, InspectedLine, ReturnLine

M = TypeVar("M", bound=Message)

EXAMPLE_TIME = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
"""When the example journey starts."""
ORDER_REF = "WH/OUT/00042"
SHIPMENT_ID = "shp-WH-OUT-00042-1"
WMS_ORDER_ID = "WMS-778812"
RETURN_ID = "WH/RET/00007"
RETURN_LABEL_ID = "ret-WH-RET-00007-1"


def _at(minutes: int) -> datetime:
    return EXAMPLE_TIME + timedelta(minutes=minutes)


def _units(value: str) -> Quantity:
    return Quantity(value=Decimal(value), uom="Units")


ADDRESS = Address(
    name="Marie Jansen",
    street="Keizersgracht 123",
    postal_code="1015 CJ",
    city="Amsterdam",
    country_code="NL",
)
CUSTOMER = Party(
    name="Marie Jansen",
    email="marie@example.com",
    phone="+31201234567",
    locale="nl_NL",
    odoo_partner_id=17,
)
DELIVERY_METHOD = DeliveryMethod(name="DHL Express", odoo_carrier_id=3)
ORDER = Order(
    ref=ORDER_REF,
    odoo_picking_id=42,
    odoo_sale_order_id=40,
    sale_order_ref="S00040",
    customer=CUSTOMER,
    ship_to=ADDRESS,
    lines=(
        OrderLine(
            sku="MUG-BLUE", name="Mug, blue", quantity=_units("2"), weight_kg=0.8, odoo_move_id=101
        ),
        OrderLine(
            sku="TEA-EARL",
            name="Earl Grey 250 g",
            quantity=_units("1"),
            weight_kg=0.25,
            odoo_move_id=102,
        ),
    ),
    service_level=ServiceLevel.EXPRESS,
    promised_at=datetime(2025, 3, 16, 18, 0, tzinfo=UTC),
    priority=Priority.NORMAL,
    channel="web",
    warehouse="AMS1",
    delivery_method=DELIVERY_METHOD,
)
PARCEL = Parcel(
    reference="387123450000000424",
    weight_kg=1.2,
    dimensions=Dimensions(length_cm=30, width_cm=20, height_cm=15),
    contents=(
        ParcelItem(sku="MUG-BLUE", quantity=_units("2")),
        ParcelItem(sku="TEA-EARL", quantity=_units("1")),
    ),
)
SHIPMENT = Shipment(
    shipment_id=SHIPMENT_ID,
    order_ref=ORDER_REF,
    carrier="dhl",
    service="express",
    tracking_number="JD014600003828",
    label_ref="labels/shp-WH-OUT-00042-1.pdf",
    cost=Money(amount=Decimal("7.58"), currency="EUR"),
)
MILESTONE = Milestone(
    code=MilestoneCode.IN_TRANSIT,
    raw_status="transit",
    raw_detail="arrived_at_facility",
    occurred_at=_at(50),
    location="Utrecht hub",
)
PRODUCT = Product(sku="MUG-BLUE", barcode="8712345678906", name="Mug, blue", uom="Units")
PICKED = (
    FulfilledLine(sku="MUG-BLUE", ordered=_units("2"), fulfilled=_units("2")),
    FulfilledLine(sku="TEA-EARL", ordered=_units("1"), fulfilled=_units("1")),
)
PICKED_LINES = (
    PickedLine(sku="MUG-BLUE", quantity=_units("2"), odoo_move_id=101),
    PickedLine(sku="TEA-EARL", quantity=_units("1"), odoo_move_id=102),
)
RETURN_LINES = (
    ReturnLine(line_no=1, sku="MUG-BLUE", quantity=_units("2"), reason="arrived chipped"),
)
INSPECTED = (
    InspectedLine(
        line_no=1,
        sku="MUG-BLUE",
        resellable=_units("1"),
        damaged=_units("1"),
        missing=_units("0"),
    ),
)
RETURN_LABEL = Shipment(
    shipment_id=RETURN_LABEL_ID,
    order_ref=ORDER_REF,
    carrier="dhl",
    service="return",
    tracking_number="JD014600009912",
    label_ref="labels/ret-WH-RET-00007-1.pdf",
    cost=Money(amount=Decimal("5.10"), currency="EUR"),
)


def _returns() -> list[Message]:
    """The return of one mug of the example order (issue 20)."""
    credited = Money(amount=Decimal("12.50"), currency="EUR")
    return [
        evt.ReturnRequested(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            odoo_picking_id=42,
            odoo_return_picking_id=57,
            odoo_sale_order_id=40,
            lines=RETURN_LINES,
            customer=CUSTOMER,
            pickup_address=ADDRESS,
            warehouse="AMS1",
            weight_kg=0.9,
            carrier="dhl",
            requested_at=_at(2000),
        ),
        evt.ReturnLabelBooked(return_id=RETURN_ID, label=RETURN_LABEL, booked_at=_at(2001)),
        evt.ReturnLabelBookingFailed(
            return_id=RETURN_ID,
            label_id=RETURN_LABEL_ID,
            reason="dhl: no rate offered for the return",
            failed_at=_at(2001),
        ),
        evt.ReturnLabelVoided(return_id=RETURN_ID, label_id=RETURN_LABEL_ID, voided_at=_at(2100)),
        evt.ReturnReceived(
            return_id=RETURN_ID,
            warehouse_return_id="RMA-5521",
            tracking_number=RETURN_LABEL.tracking_number,
            received_at=_at(4000),
        ),
        evt.ReturnInspected(
            return_id=RETURN_ID,
            warehouse_return_id="RMA-5521",
            lines=INSPECTED,
            inspected_at=_at(4100),
        ),
        evt.ReturnStockPosted(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            odoo_return_picking_id=57,
            lines=INSPECTED,
            posted_at=_at(4101),
        ),
        evt.CreditNoteIssued(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            odoo_credit_note_id=311,
            credit_note_ref="RINV/2025/00003",
            amount=credited,
            issued_at=_at(4102),
        ),
        evt.CreditNoteRefused(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            reason="the sale order has no posted invoice",
            refused_at=_at(4102),
        ),
        evt.ReturnCancelled(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            reason="customer kept the goods",
            cancelled_at=_at(2050),
        ),
        evt.ReturnParcelOverdue(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            label=RETURN_LABEL,
            reminder=1,
            overdue_at=_at(3000),
        ),
        evt.ReturnCompleted(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            lines=INSPECTED,
            credit_note_ref="RINV/2025/00003",
            credited=credited,
            completed_at=_at(4103),
        ),
        rcmd.BookReturnLabel(
            return_id=RETURN_ID,
            label_id=RETURN_LABEL_ID,
            order_ref=ORDER_REF,
            customer=CUSTOMER,
            pickup_address=ADDRESS,
            warehouse="AMS1",
            parcels=(Parcel(reference=RETURN_LABEL_ID, weight_kg=0.9),),
            carrier="dhl",
        ),
        rcmd.VoidReturnLabel(
            return_id=RETURN_ID,
            label_id=RETURN_LABEL_ID,
            carrier="dhl",
            tracking_number=RETURN_LABEL.tracking_number,
            reason="the return was cancelled",
        ),
        rcmd.ExpectReturn(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            warehouse="AMS1",
            lines=RETURN_LINES,
            tracking_number=RETURN_LABEL.tracking_number,
            carrier="dhl",
        ),
        rcmd.CancelExpectedReturn(return_id=RETURN_ID, reason="the return was cancelled"),
        rcmd.CreateReturnInOdoo(
            return_id=RETURN_ID, order_ref=ORDER_REF, odoo_picking_id=42, lines=RETURN_LINES
        ),
        rcmd.ReceiveReturnInOdoo(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            odoo_picking_id=42,
            odoo_return_picking_id=57,
            lines=INSPECTED,
        ),
        rcmd.IssueCreditNoteInOdoo(
            return_id=RETURN_ID,
            order_ref=ORDER_REF,
            odoo_sale_order_id=40,
            lines=(CreditedLine(sku="MUG-BLUE", quantity=_units("1"), odoo_move_id=101),),
        ),
        ops.RetryReturnStep(
            action_id="act-9", operator="dana", return_id=RETURN_ID, note="invoice posted"
        ),
    ]


def _build() -> dict[type[Message], Message]:
    messages: list[Message] = [
        evt.OrderReleased(order=ORDER, released_at=_at(0)),
        evt.OrderCancelled(order_ref=ORDER_REF, odoo_picking_id=42, cancelled_at=_at(5)),
        evt.ShipmentRecordedInOdoo(
            order_ref=ORDER_REF,
            odoo_picking_id=42,
            tracking_number=SHIPMENT.tracking_number,
            picking_validated=True,
            recorded_at=_at(22),
        ),
        evt.DeliveryRecordedInOdoo(order_ref=ORDER_REF, odoo_picking_id=42, recorded_at=_at(59)),
        evt.WarehouseOrderAccepted(
            order_ref=ORDER_REF, warehouse_order_id=WMS_ORDER_ID, accepted_at=_at(1)
        ),
        evt.WarehouseOrderPicked(
            order_ref=ORDER_REF, warehouse_order_id=WMS_ORDER_ID, lines=PICKED, picked_at=_at(10)
        ),
        evt.WarehouseOrderShortPicked(
            order_ref=ORDER_REF,
            warehouse_order_id=WMS_ORDER_ID,
            shortages=(FulfilledLine(sku="TEA-EARL", ordered=_units("1"), fulfilled=_units("0")),),
            reported_at=_at(10),
        ),
        evt.WarehouseOrderPacked(
            order_ref=ORDER_REF,
            warehouse_order_id=WMS_ORDER_ID,
            parcels=(PARCEL,),
            packed_at=_at(15),
        ),
        evt.WarehouseOrderShipped(
            order_ref=ORDER_REF, warehouse_order_id=WMS_ORDER_ID, lines=PICKED, shipped_at=_at(24)
        ),
        evt.WarehouseOrderCancelled(
            order_ref=ORDER_REF, warehouse_order_id=WMS_ORDER_ID, cancelled_at=_at(6)
        ),
        evt.WarehouseOrderCancelRefused(
            order_ref=ORDER_REF,
            warehouse_order_id=WMS_ORDER_ID,
            reason="order 'WH/OUT/00042' is already shipped: it can no longer be cancelled",
            refused_at=_at(26),
        ),
        evt.InventoryAdjusted(
            adjustment=StockAdjustment(
                sku="MUG-BLUE", location="AMS1/A-01-3", delta=_units("-1"), reason="damaged"
            ),
            warehouse="AMS1",
            adjusted_at=_at(3),
        ),
        evt.InventoryAdjustmentHeld(
            reference="wms-evt-8812",
            adjustment=StockAdjustment(
                sku="MUG-BLUE",
                location="AMS1/A-01-3",
                delta=_units("-240"),
                reason="damaged",
                reference="wms-evt-8812",
            ),
            warehouse="AMS1",
            reason="a change of 240 Units is more than 100 Units: it waits for an approval",
            threshold=_units("100"),
            held_at=_at(3),
        ),
        evt.InventoryAdjustmentApplied(
            reference="wms-evt-8811",
            adjustment=StockAdjustment(
                sku="MUG-BLUE",
                location="AMS1/A-01-3",
                delta=_units("-1"),
                reason="damaged",
                reference="wms-evt-8811",
            ),
            warehouse="AMS1",
            odoo_quant_id=17,
            on_hand=_units("41"),
            applied_at=_at(3),
        ),
        evt.InventorySnapshotTaken(
            snapshot_id="inv-2025-03-14-wms",
            system=InventorySystem.WAREHOUSE,
            page=1,
            last_page=True,
            levels=(StockLevel(sku="MUG-BLUE", location="AMS1/A-01-3", on_hand=_units("41")),),
            taken_at=_at(0),
        ),
        evt.InventoryReconciled(
            reconciliation_id="rec-2025-03-14",
            odoo_snapshot_id="inv-2025-03-14-odoo",
            warehouse_snapshot_id="inv-2025-03-14-wms",
            skus_compared=2,
            discrepancies=(
                StockDiscrepancy(
                    sku="MUG-BLUE",
                    location="AMS1/A-01-3",
                    odoo_on_hand=_units("42"),
                    warehouse_on_hand=_units("41"),
                ),
            ),
            reconciled_at=_at(2),
        ),
        evt.ProductsChanged(batch_id="prd-2025-03-14", page=1, last_page=True, products=(PRODUCT,)),
        evt.ProductsSynced(
            batch_id="prd-2025-03-14",
            page=1,
            accepted=0,
            rejected=(ProductRejection(sku="MUG-BLUE", reason="barcode already in use"),),
            synced_at=_at(1),
        ),
        evt.ProductSyncCompleted(
            batch_id="prd-2025-03-14",
            pages=1,
            products=1,
            accepted=0,
            rejected=(ProductRejection(sku="MUG-BLUE", reason="barcode already in use"),),
            started_at=_at(0),
            completed_at=_at(1),
        ),
        evt.ShipmentBooked(shipment=SHIPMENT, booked_at=_at(20)),
        evt.ShipmentBookingFailed(
            shipment_id=SHIPMENT_ID,
            order_ref=ORDER_REF,
            carriers_tried=("dhl", "postnl"),
            reason="postnl: 503 Service Unavailable",
            retryable=True,
            failed_at=_at(20),
        ),
        evt.ShipmentVoided(
            shipment_id=SHIPMENT_ID,
            order_ref=ORDER_REF,
            carrier="dhl",
            tracking_number=SHIPMENT.tracking_number,
            refund=SHIPMENT.cost,
            voided_at=_at(25),
        ),
        evt.ShipmentVoidRefused(
            shipment_id=SHIPMENT_ID,
            order_ref=ORDER_REF,
            carrier="dhl",
            tracking_number=SHIPMENT.tracking_number,
            reason="dhl: refused (HTTP 422): label JD014600003828 was already scanned",
            refused_at=_at(26),
        ),
        evt.MilestoneReached(
            shipment_id=SHIPMENT_ID,
            order_ref=ORDER_REF,
            carrier="dhl",
            tracking_number=SHIPMENT.tracking_number,
            milestone=MILESTONE,
        ),
        evt.NotificationSent(
            notification_id="ntf-1",
            order_ref=ORDER_REF,
            channel=NotificationChannel.EMAIL,
            template="shipped",
            recipient="marie@example.com",
            sent_at=_at(23),
        ),
        evt.NotificationFailed(
            notification_id="ntf-1",
            order_ref=ORDER_REF,
            channel=NotificationChannel.EMAIL,
            template="shipped",
            reason="421 try again later",
            attempts=1,
            permanent=False,
            failed_at=_at(23),
            recipient="marie@example.com",
        ),
        evt.ExceptionRaised(
            exception_id="exc-1",
            order_ref=ORDER_REF,
            stage="booking",
            code="all_carriers_failed",
            summary="No carrier could book WH/OUT/00042",
            order_held=True,
            raised_at=_at(21),
        ),
        evt.PartnerCircuitChanged(
            service="carrier-router",
            instance="carrier-router-7d9f-x2k4p:1",
            partner="carrier_a",
            state="open",
            previous_state="closed",
            changed_at=_at(20),
            reason="5 failures in a row, the last ServerError",
        ),
        cmd.ReleaseToWarehouse(order=ORDER),
        cmd.CancelWarehouseOrder(order_ref=ORDER_REF, reason="cancelled in Odoo"),
        cmd.SyncProducts(batch_id="prd-2025-03-14", page=1, last_page=True, products=(PRODUCT,)),
        cmd.SnapshotWarehouseInventory(snapshot_id="inv-2025-03-14-wms", warehouse="AMS1"),
        cmd.BookShipment(
            shipment_id=SHIPMENT_ID,
            order_ref=ORDER_REF,
            recipient=CUSTOMER,
            ship_to=ADDRESS,
            parcels=(PARCEL,),
            service_level=ServiceLevel.EXPRESS,
            warehouse="AMS1",
            delivery_method=DELIVERY_METHOD,
        ),
        cmd.VoidShipment(
            shipment_id=SHIPMENT_ID,
            order_ref=ORDER_REF,
            carrier="dhl",
            tracking_number=SHIPMENT.tracking_number,
            reason="order cancelled",
        ),
        cmd.RecordShipmentInOdoo(
            order_ref=ORDER_REF,
            odoo_picking_id=42,
            shipment=SHIPMENT,
            shipping_weight_kg=1.2,
            lines=PICKED_LINES,
        ),
        cmd.RecordDeliveryInOdoo(
            order_ref=ORDER_REF,
            odoo_picking_id=42,
            shipment_id=SHIPMENT_ID,
            tracking_number=SHIPMENT.tracking_number,
            delivered_at=_at(58),
        ),
        cmd.PostExceptionInOdoo(
            exception_id="exc-1",
            order_ref=ORDER_REF,
            odoo_picking_id=42,
            odoo_sale_order_id=40,
            summary="No carrier could book WH/OUT/00042",
        ),
        cmd.PostNoteInOdoo(
            note_id="note-WH/OUT/00042-cancelled",
            order_ref=ORDER_REF,
            odoo_picking_id=42,
            text="Order WH/OUT/00042 cancelled: warehouse order cancelled. Reason: "
            "cancelled in Odoo",
        ),
        cmd.SnapshotOdooInventory(snapshot_id="inv-2025-03-14-odoo", warehouse="AMS1"),
        ops.RetryOrderStage(action_id="act-1", operator="dana", order_ref=ORDER_REF),
        ops.ReleaseHeldOrder(
            action_id="act-2", operator="dana", order_ref=ORDER_REF, note="carrier back up"
        ),
        ops.CancelOrderShipment(
            action_id="act-3", operator="dana", order_ref=ORDER_REF, note="wrong carrier"
        ),
        ops.ResolveException(
            action_id="act-4",
            operator="dana",
            order_ref=ORDER_REF,
            exception_id="exc-1",
            note="Customer called; address confirmed",
        ),
        ops.ApproveInventoryAdjustment(
            action_id="act-5", operator="dana", reference="wms-evt-8812", note="pallet crushed"
        ),
        ops.StartProductSync(action_id="act-6", operator="dana", note="new season's range"),
        qry.OrderStatusRequest(order_ref=ORDER_REF),
        qry.OrderStatusResponse(
            order_ref=ORDER_REF,
            found=True,
            stage="shipped",
            shipment=SHIPMENT,
            last_milestone=MILESTONE,
            updated_at=_at(50),
        ),
        qry.PickingStatusRequest(order_ref=ORDER_REF, odoo_picking_id=42),
        qry.PickingStatusResponse(
            order_ref=ORDER_REF,
            odoo_picking_id=42,
            found=True,
            state="done",
            carrier_tracking_ref=SHIPMENT.tracking_number,
            date_done=_at(22),
        ),
    ]
    messages.extend(_returns())
    return {type(message): message for message in messages}


EXAMPLES: Mapping[type[Message], Message] = MappingProxyType(_build())
"""One example per message type."""


def example_of(message_type: type[M]) -> M:
    """The example message of a type; :class:`UnknownType` if it is not in the catalog."""
    try:
        return cast(M, EXAMPLES[message_type])
    except (KeyError, TypeError):
        raise not_in_catalog(message_type) from None
