"""What the orchestrator remembers about one order: the value stored in the workflow bucket.

Everything needed to (re)build the order's commands is kept here (the order,
its parcels, its shipment), so a deadline can re-send a command without
asking anyone, and the status query is answered from this value alone.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from waybill_contracts import Lane, MessageContext
from waybill_contracts.model import FulfilledLine, Milestone, Order, Parcel, Shipment
from waybill_orchestrator.stages import Stage


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """One transition of the order, for its timeline."""

    at: datetime
    from_stage: Stage | None
    """None for the first step."""
    to_stage: Stage
    cause_id: str | None
    """ce-id of the message that caused it; None for a deadline."""
    cause_type: str
    """ce-type of the cause, or ``deadline``."""
    note: str | None = None


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    """Why an order waits for a person, and where it was when it stopped."""

    code: str
    held_from: Stage
    exception_id: str
    resumable: bool
    """True when the fact the order was waiting for, arriving late, lets it go on."""


class OpenException(msgspec.Struct, frozen=True, kw_only=True):
    """An exception raised for ops and not resolved by the process itself."""

    exception_id: str
    code: str
    summary: str


class Cancellation(msgspec.Struct, frozen=True, kw_only=True):
    """A cancellation in progress: which compensations are still unconfirmed."""

    reason: str
    requested_at: datetime
    awaiting_warehouse: bool
    awaiting_void: bool
    """VoidShipment sent; ShipmentVoided not seen yet."""
    awaiting_booking: bool
    """A booking was under way: a label bought now must be voided."""
    voided: tuple[str, ...] = ()
    """Shipment ids confirmed voided."""


class PendingMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A command or event decided by a stored transition and not yet known to be published.

    Kept in the state (an outbox), so a crash between writing the state and
    publishing loses nothing: whoever reads the order next publishes it again
    under the same id, which JetStream and the adapters recognise.
    """

    message_id: str
    ce_type: str
    body: msgspec.Raw
    cause: MessageContext | None = None
    correlation_id: str


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    """One order's place in the order-to-ship process."""

    order_ref: str
    stage: Stage
    seq: int = 0
    """Transitions applied; part of every outgoing message id."""
    order: Order | None = None
    """None only when the cancellation overtook the release."""
    odoo_picking_id: int
    odoo_sale_order_id: int | None = None
    created_at: datetime
    updated_at: datetime
    stage_since: datetime
    deadline_at: datetime | None = None
    deadline_resends: int = 0
    warehouse_order_id: str | None = None
    warehouse_cancelled: bool = False
    picked_lines: tuple[FulfilledLine, ...] = ()
    """What the warehouse reported picked, per SKU (when it reported picked in full)."""
    parcels: tuple[Parcel, ...] = ()
    ships_picked: bool = False
    """Picked short under the ``ship_picked`` policy: Odoo validates what was picked and
    keeps a backorder for the rest."""
    booking_attempt: int = 0
    shipment: Shipment | None = None
    last_milestone: Milestone | None = None
    delivered_at: datetime | None = None
    hold: Hold | None = None
    cancellation: Cancellation | None = None
    exceptions_raised: int = 0
    open_exceptions: tuple[OpenException, ...] = ()
    timeline: tuple[Step, ...] = ()
    outbox: tuple[PendingMessage, ...] = ()
    operator_actions: tuple[str, ...] = ()
    """Ids of the latest operator actions applied (a redelivered action is recognised)."""
    lane: Lane = Lane.STANDARD
    """The lane the order was released on; everything sent for it goes on that lane, also
    what a deadline or an operator's action causes (whose causes are on no order's lane)."""

    @property
    def workflow_ref(self) -> str:
        """What the outbox names its messages by: the order."""
        return self.order_ref


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(OrderState)


def encode_state(state: OrderState) -> bytes:
    """The bucket value of ``state``."""
    return _ENCODER.encode(state)


def decode_state(value: bytes) -> OrderState:
    """The state stored as ``value``; ``msgspec.ValidationError``/``DecodeError`` if corrupt."""
    return _DECODER.decode(value)
