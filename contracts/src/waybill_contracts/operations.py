"""Operator actions: commands people send from the control tower, each naming who sent it.

The auditor serves the control tower, so it sends these on behalf of the
signed-in operator (whose token's subject is ``operator``); the orchestrator
owns order state and executes the order actions, the odoo-gateway the approval
of a held inventory adjustment and a product sync started on demand. Each
carries ``action_id``, the key its executor uses to act once however often it
is delivered (the gateway keys an approval by the adjustment it applies).

(Replaying a dead letter is no command: the control tower replays it as
`waybill dlq replay` does, and the replayed message names the operator.)
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from waybill_contracts.messages import Command
from waybill_contracts.model import OrderRef
from waybill_contracts.services import Service

_ORDERS = "orders"
_FROM_THE_TOWER: tuple[Service, ...] = (Service.AUDITOR,)

ActionId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        description="Id of this action (one click); keys its effect, so a redelivery acts once.",
    ),
]
Operator = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description="Who asked for it: the subject of the operator's verified API token.",
    ),
]
Note = Annotated[str | None, Meta(description="The operator's note, as plain text.")]


class OrderAction(Command, frozen=True, kw_only=True):
    """What every operator action carries (a base, not a message of its own): its id, who
    asked, a note, and the order; the orchestrator executes it (it owns order state)."""

    owner: ClassVar[str] = _ORDERS
    service: ClassVar[Service] = Service.ORCHESTRATOR
    senders: ClassVar[tuple[Service, ...]] = _FROM_THE_TOWER

    action_id: ActionId
    operator: Operator
    order_ref: OrderRef
    note: Note = None

    def business_key(self) -> str:
        return self.action_id

    def correlation_key(self) -> str:
        return self.order_ref


class RetryOrderStage(OrderAction, frozen=True, kw_only=True):
    """Send the command the order's current stage waits on again (as a deadline would)."""

    name: ClassVar[str] = "retry_stage"


class ReleaseHeldOrder(OrderAction, frozen=True, kw_only=True):
    """Let a held order go on from where it stopped (a booking is tried afresh)."""

    name: ClassVar[str] = "release_hold"


class CancelOrderShipment(OrderAction, frozen=True, kw_only=True):
    """Void the order's booked label and hold the order; releasing it books a new one."""

    name: ClassVar[str] = "cancel_shipment"


class ResolveException(OrderAction, frozen=True, kw_only=True):
    """Close an open ops exception of the order, with a note that goes to Odoo's chatter.

    Resolving the exception that holds the order releases it too.
    """

    name: ClassVar[str] = "resolve_exception"

    exception_id: Annotated[str, Meta(min_length=1, description="The exception to resolve.")]
    note: Annotated[
        str, Meta(min_length=1, max_length=2000, description="What was done, for the record.")
    ]


class ApproveInventoryAdjustment(Command, frozen=True, kw_only=True):
    """Apply in Odoo a warehouse adjustment the odoo-gateway held for being larger than its
    threshold (``InventoryAdjustmentHeld``); the gateway owns the held adjustment and Odoo,
    and applies it once however often this is delivered."""

    owner: ClassVar[str] = "odoo"
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    senders: ClassVar[tuple[Service, ...]] = _FROM_THE_TOWER
    name: ClassVar[str] = "approve_inventory_adjustment"

    action_id: ActionId
    operator: Operator
    reference: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=200,
            description="The held adjustment: InventoryAdjustmentHeld.reference.",
        ),
    ]
    note: Note = None

    def business_key(self) -> str:
        return self.reference

    def correlation_key(self) -> str:
        return self.reference


class StartProductSync(Command, frozen=True, kw_only=True):
    """Run a product master sync now, whatever its schedule (``WAYBILL_PRODUCT_SYNC_INTERVAL_S``,
    off by default): the odoo-gateway reads the products written since the last run and
    publishes them (``ProductsChanged``), or carries on a run a crash cut off; the
    orchestrator announces the run's end (``ProductSyncCompleted``). One run per action,
    however often this is delivered."""

    owner: ClassVar[str] = "odoo"
    service: ClassVar[Service] = Service.ODOO_GATEWAY
    senders: ClassVar[tuple[Service, ...]] = _FROM_THE_TOWER
    name: ClassVar[str] = "start_product_sync"

    action_id: ActionId
    operator: Operator
    note: Note = None

    def business_key(self) -> str:
        return self.action_id


class RetryReturnStep(Command, frozen=True, kw_only=True):
    """Try again the step a return stopped at for a person (a credit note Odoo refused, once
    the cause is fixed in Odoo); the orchestrator owns the return and acts once per action.
    Since 1.1."""

    owner: ClassVar[str] = "returns"
    service: ClassVar[Service] = Service.ORCHESTRATOR
    senders: ClassVar[tuple[Service, ...]] = _FROM_THE_TOWER
    name: ClassVar[str] = "retry_step"

    action_id: ActionId
    operator: Operator
    return_id: Annotated[
        str, Meta(min_length=1, max_length=128, description="The return (its return id).")
    ]
    note: Note = None

    def business_key(self) -> str:
        return self.action_id

    def correlation_key(self) -> str:
        return self.return_id


ORDER_ACTIONS: tuple[type[OrderAction], ...] = (
    RetryOrderStage,
    ReleaseHeldOrder,
    CancelOrderShipment,
    ResolveException,
)
"""The operator actions the orchestrator executes."""

INVENTORY_ACTIONS: tuple[type[Command], ...] = (ApproveInventoryAdjustment,)
"""The operator actions the odoo-gateway executes on Odoo's stock."""

PRODUCT_ACTIONS: tuple[type[Command], ...] = (StartProductSync,)
"""The operator actions the odoo-gateway executes on the product master."""

RETURN_ACTIONS: tuple[type[Command], ...] = (RetryReturnStep,)
"""The operator actions on returns, which the orchestrator executes."""

OPERATOR_COMMAND_TYPES: tuple[type[Command], ...] = (
    *ORDER_ACTIONS,
    *INVENTORY_ACTIONS,
    *PRODUCT_ACTIONS,
    *RETURN_ACTIONS,
)
"""Every operator action."""
