"""The partners the control tower reports on: which service speaks to each, and which of that
service's events say the partner failed.

Adding a partner is adding a row; the figures come from the audit trail alone
(commands the service was sent, what it published in answer, its dead letters).
"""

from __future__ import annotations

from dataclasses import dataclass

from waybill_contracts import Message, SubjectMap
from waybill_contracts.events import (
    NotificationFailed,
    ShipmentBookingFailed,
    ShipmentVoidRefused,
    WarehouseOrderCancelRefused,
)
from waybill_contracts.services import Service


@dataclass(frozen=True)
class Partner:
    """An external system and the one service that speaks to it."""

    slug: str
    name: str
    service: Service
    failures: tuple[type[Message], ...] = ()
    """Events of the service that report the partner failed or refused."""

    def failure_types(self, subjects: SubjectMap) -> tuple[str, ...]:
        """The ``ce-type``s of :attr:`failures` under ``subjects``."""
        return tuple(subjects.ce_type_for(t) for t in self.failures)


PARTNERS: tuple[Partner, ...] = (
    Partner("odoo", "Odoo", Service.ODOO_GATEWAY),
    Partner("warehouse", "Warehouse (WMS)", Service.WMS_BRIDGE, (WarehouseOrderCancelRefused,)),
    Partner(
        "carriers", "Carriers", Service.CARRIER_ROUTER, (ShipmentBookingFailed, ShipmentVoidRefused)
    ),
    Partner("mail", "Customer notifications", Service.NOTIFIER, (NotificationFailed,)),
)

BY_SLUG = {partner.slug: partner for partner in PARTNERS}
