"""``POST /webhooks/odoo/<token>``: Odoo's automation rules announcing a change.

Odoo cannot sign webhooks, so the secret is the path token (compared in
constant time) plus, optionally, an allow-list of source networks; anything
else gets the same 404 as a path that does not exist. The body is only a
hint of which record changed: the record is re-read from Odoo in the
background and the answer (202) goes back at once, well inside Odoo's 1 s
timeout, even when Odoo itself is slow. Up to Odoo 18 the webhook leaves
before its transaction commits, so a picking that does not look ready yet
is read again a little later (``WAYBILL_ODOO_WEBHOOK_RECHECK_S``). Whatever
a webhook misses, the poll finds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec
from aiohttp import web

from waybill_odoo_gateway.gateway import Gateway
from waybill_odoo_gateway.odoo_errors import OdooLoginRejected
from waybill_odoo_gateway.order_facts import Seen
from waybill_odoo_gateway.webhook_address import WEBHOOK_PATH, token_matches
from waybill_runtime.cancellation import raise_if_cancelled
from waybill_runtime.http import ProblemError, json_answer, read_json
from waybill_runtime.metrics import Children, MetricsRegistry
from waybill_runtime.outcomes import PermanentError, TransientError
from waybill_runtime.server_spans import continue_server_span

__all__ = ["OdooWebhook", "webhook_routes"]

log = logging.getLogger("waybill.odoo.webhooks")

_HANDLED_MODELS = ("stock.picking", "sale.order")


class OdooWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """What the gateway reads of a webhook body: which record changed. The rest is ignored."""

    model: Annotated[str, msgspec.Meta(min_length=1)] = msgspec.field(name="_model")
    id: Annotated[int, msgspec.Meta(gt=0)] = msgspec.field(name="_id")


def _not_found(request: web.Request) -> ProblemError:
    # The same answer as for a path that does not exist: a wrong token must
    # not learn that it hit the webhook endpoint.
    return ProblemError(404, "Not Found", f"there is nothing at {request.path}")


def _from_allowed_network(request: web.Request, gateway: Gateway) -> bool:
    networks = gateway.settings.allowed_networks
    if not networks:
        return True
    try:
        source = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    return any(source in network for network in networks)


async def process_webhook(gateway: Gateway, hook: OdooWebhook) -> Seen:
    """Re-read the announced record and act on what Odoo says now (with rechecks)."""
    look: Callable[[int], Awaitable[Seen]] = (
        gateway.facts.on_picking if hook.model == "stock.picking" else gateway.facts.on_sale_order
    )
    seen = Seen.IGNORED
    for delay in (0.0, *gateway.settings.odoo_webhook_recheck_s):
        if delay:
            await asyncio.sleep(delay)
        try:
            seen = await look(hook.id)
        except OdooLoginRejected:
            return Seen.FAILED  # said once by the login keeper; the poll catches up later
        except TransientError as later:
            log.warning(
                "webhook for %s %d not processed (%s); the poll will pick it up",
                hook.model,
                hook.id,
                later,
            )
            return Seen.FAILED
        except PermanentError as refused:
            log.warning("webhook for %s %d refused: %s", hook.model, hook.id, refused)
            return Seen.FAILED
        except Exception as failed:  # an Odoo server error, say: the poll tries again
            log.warning(
                "webhook for %s %d failed: %s: %s",
                hook.model,
                hook.id,
                type(failed).__name__,
                failed,
            )
            return Seen.FAILED
        raise_if_cancelled()  # the gateway is stopping: the poll takes over
        if seen is not Seen.NOT_READY:
            break
    return seen


def webhook_routes(gateway: Gateway, metrics: MetricsRegistry) -> list[web.RouteDef]:
    """The webhook route of a running gateway."""
    received = Children(
        metrics.counter(
            "waybill_odoo_webhooks_total", "Odoo webhooks received, by outcome.", ["outcome"]
        )
    )

    async def receive(request: web.Request) -> web.Response:
        if not token_matches(request.match_info["token"], gateway.settings.odoo_webhook_token):
            received("refused").inc()
            raise _not_found(request)
        if not _from_allowed_network(request, gateway):
            received("refused").inc()
            log.warning(
                "Odoo webhook from %s refused: not in WAYBILL_ODOO_WEBHOOK_NETWORKS", request.remote
            )
            raise _not_found(request)
        hook = await read_json(request, OdooWebhook)
        if hook.model not in _HANDLED_MODELS:
            received("ignored").inc()
            return json_answer({"status": "ignored", "model": hook.model, "id": hook.id})
        # Answered at once, the record re-read in the background: the request's SERVER
        # span goes on into that work, so the order it releases has it in its trace.
        continuation = continue_server_span()
        accepted = gateway.backlog.submit(
            continuation.around(process_webhook_quietly(gateway, hook)),
            name=f"odoo webhook {hook.model} {hook.id}",
        )
        if not accepted:
            continuation.abandon()
            received("overloaded").inc()
            raise ProblemError(
                503,
                "Service Unavailable",
                "too many Odoo webhooks in progress; the record will be found by the poll",
                headers={"Retry-After": "5"},
            )
        received("accepted").inc()
        return json_answer({"status": "accepted", "model": hook.model, "id": hook.id}, status=202)

    return [web.post(WEBHOOK_PATH, receive)]


async def process_webhook_quietly(gateway: Gateway, hook: OdooWebhook) -> None:
    """:func:`process_webhook` for the backlog: its answer only goes to the metrics."""
    seen = await process_webhook(gateway, hook)
    gateway.checked.labels("webhook", seen.value).inc()
