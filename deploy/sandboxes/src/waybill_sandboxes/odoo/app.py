"""The Odoo sandbox's aiohttp application: every protocol, the admin API, faults, webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from waybill_sandboxes.delivery import webhook_admin_routes
from waybill_sandboxes.faults import install_faults
from waybill_sandboxes.odoo.admin import admin_routes
from waybill_sandboxes.odoo.protocols.json2 import json2_routes, version_routes
from waybill_sandboxes.odoo.protocols.jsonrpc import jsonrpc_routes
from waybill_sandboxes.odoo.protocols.web import web_routes
from waybill_sandboxes.odoo.protocols.xmlrpc import xmlrpc_routes
from waybill_sandboxes.odoo.sandbox import SANDBOX_KEY, OdooSandbox


def _self_intercepting(request: web.Request) -> None:
    # Every Odoo handler names its operation itself once it has read the body
    # (the model and method are inside it), so the middleware counts nothing.
    return None


def build_odoo_app(sandbox: OdooSandbox) -> web.Application:
    """An app serving ``sandbox`` over JSON-RPC, XML-RPC, the web routes and (19) JSON-2.

    Fault operations are named ``<model>.<method>`` for model calls on any
    protocol (``stock.picking.button_validate``), ``common.<method>`` and
    ``db.<method>`` for the other RPC services, and ``web.version_info``,
    ``web.session.authenticate``, ``web.version``, ``web.doc`` for the rest.
    """
    app = web.Application()
    app[SANDBOX_KEY] = sandbox
    install_faults(app, sandbox.faults, operation_of=_self_intercepting)
    app.add_routes(jsonrpc_routes())
    app.add_routes(web_routes())
    app.add_routes(xmlrpc_routes())
    app.add_routes(version_routes())
    if sandbox.version.has_json2:
        app.add_routes(json2_routes())
    app.add_routes(admin_routes())
    app.add_routes(webhook_admin_routes(sandbox.webhooks.sender))

    async def webhook_sender(app: web.Application) -> AsyncIterator[None]:
        await sandbox.webhooks.sender.start()
        yield
        await sandbox.webhooks.sender.close()

    app.cleanup_ctx.append(webhook_sender)
    return app
