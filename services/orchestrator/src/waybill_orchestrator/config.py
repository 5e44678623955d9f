"""The orchestrator's settings: stage deadlines, the deadline sweep, booking attempts.

Every field is read from ``WAYBILL_<FIELD>`` (e.g. ``WAYBILL_DEADLINE_BOOKING_S``);
the defaults suit a real warehouse and real carriers, tests set small values.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from waybill_orchestrator.changes import Policy
from waybill_orchestrator.return_process import ReturnPolicy
from waybill_orchestrator.stages import Stage
from waybill_runtime.bus.expiring import MIN_TTL_S
from waybill_runtime.settings import RuntimeSettings

Seconds = Annotated[float, msgspec.Meta(gt=0)]


class OrchestratorSettings(RuntimeSettings, frozen=True, kw_only=True):
    """Settings of the orchestrator (on top of the runtime's own)."""

    deadline_in_warehouse_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="Longest an order may wait in one warehouse stage (released, accepted, "
            "picked) before the release is re-sent, then escalated"
        ),
    ] = 1800.0
    deadline_booking_s: Annotated[
        Seconds, msgspec.Meta(description="Longest a label booking may take before re-sent")
    ] = 600.0
    deadline_recording_s: Annotated[
        Seconds,
        msgspec.Meta(description="Longest Odoo may take to record a shipment before re-sent"),
    ] = 600.0
    deadline_delivery_recording_s: Annotated[
        Seconds,
        msgspec.Meta(description="Longest Odoo may take to record a delivery before re-sent"),
    ] = 600.0
    deadline_cancelling_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="Longest the warehouse and carrier may take to confirm a cancellation"
        ),
    ] = 600.0
    deadline_sweep_interval_s: Annotated[
        Seconds, msgspec.Meta(description="How often the workflow bucket is checked for deadlines")
    ] = 30.0
    booking_attempts: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=10,
            description="Bookings tried per order (a new shipment id each) while the carrier "
            "router reports retryable failures",
        ),
    ] = 2
    short_pick_policy: Annotated[
        Literal["hold", "ship_picked"],
        msgspec.Meta(
            description="What a short pick does: hold (the order waits for a person, as "
            "before) or ship_picked (what was picked ships, Odoo keeps a backorder for the rest)"
        ),
    ] = "hold"
    ops_assignee_login: Annotated[
        str | None,
        msgspec.Meta(
            description="Odoo login that exception activities are assigned to; empty = the "
            "gateway's default ops user"
        ),
    ] = None
    finished_order_ttl_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="How long a finished (shipped and recorded, or cancelled) order's state "
            "is kept before it expires from the workflow bucket; 0 keeps it for ever. Longer than "
            "dead letters are kept (30 days), so a replayed dead letter still finds its order",
        ),
    ] = 35 * 86400.0
    return_parcel_deadline_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="How long a customer has to send a return parcel once the label is "
            "bought before a reminder; as long again after it, the label is voided and customer "
            "service is told"
        ),
    ] = 14 * 86400.0
    return_step_deadline_s: Annotated[
        Seconds,
        msgspec.Meta(
            description="Longest a return label purchase, Odoo's stock posting or its credit note "
            "may take before the command is re-sent once, then customer service is told"
        ),
    ] = 600.0
    workflow_write_attempts: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=1000,
            description="Compare-and-set attempts on an order's state before the message is "
            "retried later",
        ),
    ] = 25

    def __post_init__(self) -> None:
        if 0 < self.finished_order_ttl_s < MIN_TTL_S:
            raise ValueError(
                f"finished_order_ttl_s {self.finished_order_ttl_s} is under a second: set "
                "WAYBILL_FINISHED_ORDER_TTL_S to 0 (keep for ever) or at least 1"
            )

    def return_policy(self) -> ReturnPolicy:
        """The return workflow's rules these settings describe."""
        return ReturnPolicy(
            parcel_deadline_s=self.return_parcel_deadline_s,
            step_deadline_s=self.return_step_deadline_s,
            ops_assignee_login=self.ops_assignee_login,
        )

    def policy(self) -> Policy:
        """The process rules these settings describe."""
        in_warehouse = self.deadline_in_warehouse_s
        return Policy(
            deadlines_s={
                Stage.IN_WAREHOUSE: in_warehouse,
                Stage.ACCEPTED: in_warehouse,
                Stage.PICKED: in_warehouse,
                Stage.BOOKING: self.deadline_booking_s,
                Stage.RECORDING: self.deadline_recording_s,
                Stage.RECORDING_DELIVERY: self.deadline_delivery_recording_s,
                Stage.CANCELLING: self.deadline_cancelling_s,
            },
            booking_attempts=self.booking_attempts,
            ops_assignee_login=self.ops_assignee_login,
            ship_picked=self.short_pick_policy == "ship_picked",
        )
