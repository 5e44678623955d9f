"""The services of the mesh, by the names every subject, consumer and source uses."""

from __future__ import annotations

from enum import StrEnum


class Service(StrEnum):
    """A Waybill service. The value is the name used in subjects, durables and ``ce-source``."""

    ODOO_GATEWAY = "odoo-gateway"
    ORCHESTRATOR = "orchestrator"
    WMS_BRIDGE = "wms-bridge"
    CARRIER_ROUTER = "carrier-router"
    NOTIFIER = "notifier"
    AUDITOR = "auditor"


SERVICES: tuple[Service, ...] = tuple(Service)
"""Every service, in the order of the design's service table."""
