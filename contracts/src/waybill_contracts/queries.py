"""Queries: request/response pairs answered at once by one service.

Requests go to ``<prefix>.qry.<service>.<name>`` (NATS micro endpoints);
responses go to the requester's reply inbox. A query subject carries no
version token: a breaking change to a query is a new query name.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from waybill_contracts.messages import QueryRequest, QueryResponse
from waybill_contracts.model import (
    Milestone,
    OdooPickingId,
    OrderRef,
    Shipment,
    TrackingNumber,
    UtcDateTime,
)
from waybill_contracts.services import Service


class OrderStatusResponse(QueryResponse, frozen=True, kw_only=True):
    """Where an order is in the order-to-ship process."""

    service: ClassVar[Service] = Service.ORCHESTRATOR
    name: ClassVar[str] = "order_status"

    order_ref: OrderRef
    found: Annotated[bool, Meta(description="False when the orchestrator never saw the order.")]
    stage: Annotated[
        str | None,
        Meta(
            description="Process stage: an OrderStage value (in_warehouse, booking, shipped, "
            "delivered, held, cancelled, ...). Readers must accept stages they do not know."
        ),
    ] = None
    held: Annotated[bool, Meta(description="True when the order waits for a person.")] = False
    shipment: Annotated[Shipment | None, Meta(description="The booked shipment, if any.")] = None
    last_milestone: Annotated[
        Milestone | None, Meta(description="Latest tracking milestone, if any.")
    ] = None
    open_exceptions: Annotated[
        tuple[str, ...], Meta(description="Summaries of exceptions not yet resolved.")
    ] = ()
    updated_at: Annotated[
        UtcDateTime | None, Meta(description="When the order's state last changed.")
    ] = None

    def business_key(self) -> str:
        return self.order_ref


class OrderStatusRequest(QueryRequest, frozen=True, kw_only=True):
    """Ask the orchestrator where an order is."""

    service: ClassVar[Service] = Service.ORCHESTRATOR
    name: ClassVar[str] = "order_status"
    response_type: ClassVar[type[QueryResponse]] = OrderStatusResponse

    order_ref: OrderRef

    def business_key(self) -> str:
        return self.order_ref


class PickingStatusResponse(QueryResponse, frozen=True, kw_only=True):
    """The delivery picking as Odoo has it right now."""

    service: ClassVar[Service] = Service.ODOO_GATEWAY
    name: ClassVar[str] = "picking_status"

    order_ref: OrderRef
    odoo_picking_id: OdooPickingId
    found: Annotated[bool, Meta(description="False when Odoo has no such picking.")]
    state: Annotated[
        str | None,
        Meta(description="Odoo picking state (draft, waiting, confirmed, assigned, done, cancel)."),
    ] = None
    carrier_tracking_ref: Annotated[
        TrackingNumber | None, Meta(description="Tracking ref stored on the picking.")
    ] = None
    date_done: Annotated[
        UtcDateTime | None, Meta(description="When the picking was validated.")
    ] = None

    def business_key(self) -> str:
        return self.order_ref


class PickingStatusRequest(QueryRequest, frozen=True, kw_only=True):
    """Ask the gateway to re-read a picking from Odoo (before compensating, say)."""

    service: ClassVar[Service] = Service.ODOO_GATEWAY
    name: ClassVar[str] = "picking_status"
    response_type: ClassVar[type[QueryResponse]] = PickingStatusResponse

    order_ref: OrderRef
    odoo_picking_id: OdooPickingId

    def business_key(self) -> str:
        return self.order_ref


QUERY_TYPES: tuple[type[QueryRequest | QueryResponse], ...] = (
    OrderStatusRequest,
    OrderStatusResponse,
    PickingStatusRequest,
    PickingStatusResponse,
)
"""Every query request and response type, each request followed by its response."""
