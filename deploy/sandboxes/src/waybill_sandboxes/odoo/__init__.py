"""Odoo sandbox: an in-memory Odoo 16-19 speaking JSON-RPC, XML-RPC, the web routes and JSON-2.

Build one with :class:`OdooSandbox`, serve it with :func:`build_odoo_app` and
:func:`waybill_sandboxes.server.serve`, and point odoorpc, odoo-client-lib or
Waybill's gateway at the URL.
"""

from waybill_sandboxes.odoo.app import build_odoo_app
from waybill_sandboxes.odoo.inspection import (
    ChatterMessage,
    MoveView,
    OrderView,
    PickingView,
    ScheduledActivity,
)
from waybill_sandboxes.odoo.registry import Registry
from waybill_sandboxes.odoo.sandbox import OdooSandbox, OdooSettings
from waybill_sandboxes.odoo.seed import seed_data
from waybill_sandboxes.odoo.users import Credential
from waybill_sandboxes.odoo.versions import SUPPORTED_VERSIONS, OdooVersion
from waybill_sandboxes.odoo.webhooks import WebhookRule, default_rules

__all__ = [
    "SUPPORTED_VERSIONS",
    "ChatterMessage",
    "Credential",
    "MoveView",
    "OdooSandbox",
    "OdooSettings",
    "OdooVersion",
    "OrderView",
    "PickingView",
    "Registry",
    "ScheduledActivity",
    "WebhookRule",
    "build_odoo_app",
    "default_rules",
    "seed_data",
]
