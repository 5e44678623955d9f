"""The Odoo sandbox's admin HTTP API under ``/_sandbox/odoo``: the Python API, over HTTP.

For scripts and the local stack: create and cancel orders, read back what an
integration did (tracking refs, validated pickings, chatter, activities),
manage users and the automation rules, make calls hit lock conflicts or business
refusals (a UserError such as a locked period refusing a credit note). Faults
and call counters are under ``/_sandbox/faults`` and ``/_sandbox/calls``,
webhook deliveries under ``/_sandbox/webhooks`` (shared with the other sandboxes).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from waybill_sandboxes.odoo.exceptions import OdooError
from waybill_sandboxes.odoo.sandbox import SANDBOX_KEY, OdooSandbox
from waybill_sandboxes.odoo.users import Credential
from waybill_sandboxes.odoo.webhooks import WebhookRule
from waybill_sandboxes.responses import BadBody, json_response, read_json

PREFIX = "/_sandbox/odoo"


class OrderLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A line of a new order: product SKU (``default_code``) and quantity."""

    sku: str
    quantity: float = 1.0


class NewOrder(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /_sandbox/odoo/orders``; every field is optional."""

    customer_id: int | None = None
    lines: list[OrderLine] | None = None
    client_order_ref: str | None = None
    carrier: str | None = None
    urgent: bool = False
    """Star the delivery (priority "1"), as a user marks it urgent."""


class NewUser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /_sandbox/odoo/users``."""

    login: str
    password: str | None = None
    can_write: bool = True
    name: str = ""


class LockConflicts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``PUT /_sandbox/odoo/lock-conflicts/{operation}``."""

    times: int = 1


class Refusals(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /_sandbox/odoo/refusals/{operation}``: a UserError (or, with
    ``validation``, a ValidationError) saying ``message`` for the next ``times`` calls."""

    message: str
    times: int = 1
    validation: bool = False


class UserUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /_sandbox/odoo/users/{login}``."""

    can_write: bool


def _problem(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


def _user(credential: Credential) -> dict[str, Any]:
    return {
        "uid": credential.uid,
        "login": credential.login,
        "password": credential.password,
        "api_key": credential.api_key,
        "can_write": credential.can_write,
    }


def info(sandbox: OdooSandbox) -> dict[str, Any]:
    """What an integrator needs to connect: version, database, users and keys."""
    return {
        "version": sandbox.version.series,
        "db": sandbox.db,
        "json2": sandbox.version.has_json2,
        "users": [_user(c) for c in sandbox.credentials.all()],
        "webhook_url": sandbox.webhooks.sender.url,
        "webhook_rules": sandbox.webhooks.rules(),
    }


async def _info(request: web.Request) -> web.Response:
    return json_response(info(request.app[SANDBOX_KEY]))


async def _create_order(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    try:
        body = await read_json(request, NewOrder)
        lines = None if body.lines is None else [(line.sku, line.quantity) for line in body.lines]
        order = sandbox.create_order(
            customer_id=body.customer_id,
            lines=lines,
            client_order_ref=body.client_order_ref,
            carrier=body.carrier,
            urgent=body.urgent,
        )
    except (BadBody, ValueError) as bad:
        return _problem(400, str(bad))
    except OdooError as refused:
        return _problem(409, refused.message)
    return json_response(order, status=201)


async def _list_orders(request: web.Request) -> web.Response:
    return json_response(request.app[SANDBOX_KEY].orders())


async def _get_order(request: web.Request) -> web.Response:
    try:
        return json_response(request.app[SANDBOX_KEY].order(request.match_info["ref"]))
    except KeyError as missing:
        return _problem(404, str(missing.args[0]))


async def _cancel_order(request: web.Request) -> web.Response:
    try:
        order = request.app[SANDBOX_KEY].cancel_order(request.match_info["ref"])
    except KeyError as missing:
        return _problem(404, str(missing.args[0]))
    except OdooError as refused:
        return _problem(409, refused.message)
    return json_response(order)


async def _invoice_order(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    ref = request.match_info["ref"]
    try:
        invoiced = sandbox.invoice_order(ref)
    except KeyError as missing:
        return _problem(404, str(missing.args[0]))
    except OdooError as refused:
        return _problem(409, refused.message)
    if invoiced is None:
        return _problem(409, f"order {ref!r} has nothing delivered left to invoice")
    return json_response(sandbox.invoices_of(ref))


async def _invoices(request: web.Request) -> web.Response:
    try:
        return json_response(request.app[SANDBOX_KEY].invoices_of(request.match_info["ref"]))
    except KeyError as missing:
        return _problem(404, str(missing.args[0]))


async def _list_pickings(request: web.Request) -> web.Response:
    return json_response(request.app[SANDBOX_KEY].pickings(request.query.get("state")))


async def _get_picking(request: web.Request) -> web.Response:
    try:
        return json_response(request.app[SANDBOX_KEY].picking(request.match_info["ref"]))
    except KeyError as missing:
        return _problem(404, str(missing.args[0]))


async def _add_user(request: web.Request) -> web.Response:
    try:
        body = await read_json(request, NewUser)
        credential = request.app[SANDBOX_KEY].add_user(
            body.login, body.password, can_write=body.can_write, name=body.name
        )
    except (BadBody, ValueError) as bad:
        return _problem(400, str(bad))
    return json_response(_user(credential), status=201)


async def _update_user(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    try:
        body = await read_json(request, UserUpdate)
        sandbox.set_can_write(request.match_info["login"], body.can_write)
    except BadBody as bad:
        return _problem(400, str(bad))
    except KeyError as missing:
        return _problem(404, str(missing.args[0]))
    return json_response(_user(sandbox.user(request.match_info["login"])))


async def _expire_sessions(request: web.Request) -> web.Response:
    request.app[SANDBOX_KEY].expire_sessions()
    return json_response({"expired": True})


async def _lock_conflicts(request: web.Request) -> web.Response:
    operation = request.match_info["operation"]
    try:
        body = await read_json(request, LockConflicts)
        request.app[SANDBOX_KEY].registry.inject_lock_conflicts(operation, body.times)
    except (BadBody, ValueError) as bad:
        return _problem(400, str(bad))
    return json_response({"operation": operation, "times": body.times})


async def _refusals(request: web.Request) -> web.Response:
    operation = request.match_info["operation"]
    try:
        body = await read_json(request, Refusals)
        request.app[SANDBOX_KEY].registry.inject_refusals(
            operation, body.message, body.times, validation=body.validation
        )
    except (BadBody, ValueError) as bad:
        return _problem(400, str(bad))
    return json_response({"operation": operation, "times": body.times, "message": body.message})


async def _get_rules(request: web.Request) -> web.Response:
    return json_response(request.app[SANDBOX_KEY].webhooks.rules())


async def _put_rules(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    try:
        rules = await read_json(request, list[WebhookRule])
        sandbox.webhooks.replace_rules(rules)
    except (BadBody, ValueError) as bad:
        return _problem(400, str(bad))
    return json_response(sandbox.webhooks.rules())


def admin_routes() -> list[web.RouteDef]:
    """Every ``/_sandbox/odoo`` route."""
    return [
        web.get(f"{PREFIX}/info", _info),
        web.post(f"{PREFIX}/orders", _create_order),
        web.get(f"{PREFIX}/orders", _list_orders),
        web.get(f"{PREFIX}/orders/{{ref}}", _get_order),
        web.post(f"{PREFIX}/orders/{{ref}}/cancel", _cancel_order),
        web.post(f"{PREFIX}/orders/{{ref}}/invoice", _invoice_order),
        web.get(f"{PREFIX}/orders/{{ref}}/invoices", _invoices),
        web.get(f"{PREFIX}/pickings", _list_pickings),
        web.get(f"{PREFIX}/pickings/{{ref:.+}}", _get_picking),
        web.post(f"{PREFIX}/users", _add_user),
        web.put(f"{PREFIX}/users/{{login}}", _update_user),
        web.post(f"{PREFIX}/sessions/expire", _expire_sessions),
        web.put(f"{PREFIX}/lock-conflicts/{{operation}}", _lock_conflicts),
        web.put(f"{PREFIX}/refusals/{{operation}}", _refusals),
        web.get(f"{PREFIX}/webhook-rules", _get_rules),
        web.put(f"{PREFIX}/webhook-rules", _put_rules),
    ]
