"""Lanes: how urgent work overtakes a backlog.

A JetStream consumer delivers in stream order, so an urgent order released
behind 5,000 others would wait for all of them at every hop. Each event and
command subject therefore has an express twin, the same subject with one
more token (``waybill.cmd.carrier.book_shipment.v1.express``). Both live in
the same stream; each service reads the express twins with a durable of its
own and its own handler slots, so an express message starts at once however
deep the standard durable's backlog is.

A message's lane is decided once, where the order enters the mesh (see
:func:`order_lane`), and every message caused by it travels on the same lane.
Facts observed from outside carry their lane on the partner's record (the
WMS order's priority).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from waybill_contracts.model import Order, Priority, ServiceLevel

__all__ = ["EXPRESS_SERVICE_LEVELS", "Lane", "order_lane"]


class Lane(StrEnum):
    """Which queue a message waits in."""

    STANDARD = "standard"
    EXPRESS = "express"


EXPRESS_SERVICE_LEVELS = frozenset(
    {ServiceLevel.EXPRESS, ServiceLevel.NEXT_DAY, ServiceLevel.SAME_DAY}
)
"""Service levels that promise delivery within a day: such orders go express."""


def order_lane(order: Order, *, now: datetime, promise_within: timedelta | None) -> Lane:
    """The lane of ``order``: express when it is urgent, promised fast or promised soon.

    Urgent is Odoo's priority star; promised fast is an express, next-day or
    same-day service level; promised soon is a delivery promise at most
    ``promise_within`` away (the order must leave before the carrier's next
    cut-offs to keep it); None judges by priority and service level only.
    """
    if order.priority is Priority.URGENT or order.service_level in EXPRESS_SERVICE_LEVELS:
        return Lane.EXPRESS
    promised_at = order.promised_at
    if (
        promise_within is not None
        and promised_at is not None
        and promised_at - now <= promise_within
    ):
        return Lane.EXPRESS
    return Lane.STANDARD
