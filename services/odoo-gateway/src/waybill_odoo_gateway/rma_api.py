"""The RMA API: ``POST /returns``, a customer's return of delivered goods -> ``ReturnRequested``.

Called by the shop's or customer service's systems with an API token of the
``operator`` role (the runtime checks it; see docs/security.md). The request
names the RMA (its id becomes the return id), the order (Waybill's order ref,
the delivery's name in Odoo) and what comes back. The order must be delivered
(its delivery done in Odoo) and each quantity within what was delivered and
not returned yet. No return picking is made here: the orchestrator sends
``CreateReturnInOdoo`` for a request without one.

Once per RMA id: the first request publishes (202); the same request again is
answered as it was (200); another content under the same id is a 409. The
request's fingerprint is kept with the runtime's once-only record.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import msgspec
from aiohttp import web

from waybill_contracts import fact_id
from waybill_contracts.events import ReturnRequested
from waybill_contracts.model import Quantity
from waybill_contracts.returns import ReturnLine
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.deliveries import Picking
from waybill_odoo_gateway.gateway import GATEWAY, Gateway
from waybill_odoo_gateway.return_requests import return_requested, returnable
from waybill_odoo_gateway.rma_ledger import RMA_BUCKET, RmaLedger
from waybill_runtime.http.problem import ProblemError, read_json
from waybill_runtime.outcomes import PermanentError, RetryLater, TransientError
from waybill_runtime.service import Runtime

__all__ = ["RMA_PATH", "RmaAccepted", "RmaLine", "RmaRequest", "rma_routes"]

log = logging.getLogger("waybill.odoo.rma")

RMA_PATH = "/returns"


class RmaLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A product the customer sends back."""

    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=128, description="The SKU.")]
    quantity: Annotated[float, msgspec.Meta(gt=0, le=1_000_000, description="How many.")]
    reason: Annotated[
        Annotated[str, msgspec.Meta(max_length=256)] | None,
        msgspec.Meta(description="Why, in the customer's words."),
    ] = None


class RmaRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A return authorisation: which order, what comes back."""

    rma_id: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=64,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
            description="The RMA's id, unique per return: the return id of everything after",
        ),
    ]
    order_ref: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=128, description="The order (WH/OUT/00001)."),
    ]
    lines: Annotated[tuple[RmaLine, ...], msgspec.Meta(min_length=1, max_length=200)]


class RmaAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """The return requested: the orchestrator takes it from here."""

    return_id: str
    order_ref: str
    odoo_picking_id: int
    lines: tuple[RmaLine, ...]


def _fingerprint(body: RmaRequest) -> str:
    """The request's content, order-insensitive: what a repeat must match."""
    lines = sorted(
        (line.sku, Decimal(str(line.quantity)).normalize(), line.reason or "")
        for line in body.lines
    )
    material = repr((body.order_ref, lines)).encode()
    return hashlib.sha256(material).hexdigest()


async def _delivery(gateway: Gateway, order_ref: str) -> Picking:
    found = await gateway.odoo.call(
        "stock.picking",
        "search",
        domain=[("name", "=", order_ref), ("picking_type_code", "=", "outgoing")],
        limit=1,
    )
    picking = await gateway.reader.picking(int(found[0])) if found else None
    if picking is None:
        raise ProblemError(404, "Not Found", f"no order {order_ref!r} in Odoo")
    if picking.state != "done":
        raise ProblemError(
            409,
            "Conflict",
            f"order {order_ref} is not delivered (its delivery is "
            f"{picking.state!r} in Odoo): only delivered goods can be returned",
        )
    return picking


async def _lines(
    gateway: Gateway, body: RmaRequest, delivery: Picking, ledger: RmaLedger
) -> tuple[ReturnLine, ...]:
    skus = [line.sku for line in body.lines]
    if len(set(skus)) != len(skus):
        raise ProblemError(422, "Unprocessable Content", f"a SKU is named twice: {skus}")
    left = await returnable(gateway.odoo, delivery)
    for sku, taken in (await ledger.pending(gateway.odoo, besides=body.rma_id)).items():
        if sku in left:
            left[sku] = (left[sku][0], left[sku][1] - taken)
    lines: list[ReturnLine] = []
    for number, line in enumerate(body.lines, start=1):
        quantity = Decimal(str(line.quantity)).normalize()
        if line.sku not in left:
            raise ProblemError(
                422, "Unprocessable Content", f"{line.sku} was not delivered in {delivery.name}"
            )
        move, still = left[line.sku]
        if quantity > still:
            raise ProblemError(
                422,
                "Unprocessable Content",
                f"{quantity} {line.sku} to return, but only "
                f"{still.normalize()} of {delivery.name} can still be returned",
            )
        lines.append(
            ReturnLine(
                line_no=number,
                sku=line.sku,
                quantity=Quantity(value=quantity, uom="Units"),
                reason=line.reason,
                odoo_move_id=move,
            )
        )
    return tuple(lines)


def _requested_otherwise(rma_id: str) -> ProblemError:
    return ProblemError(
        409, "Conflict", f"RMA {rma_id} was requested already with other lines or for another order"
    )


def rma_routes(runtime: Runtime[OdooGatewaySettings]) -> list[web.RouteDef]:
    """The RMA route of a running gateway."""

    async def request_return(request: web.Request) -> web.Response:
        body = await read_json(request, RmaRequest)
        try:
            return await _request_return(body)
        except RetryLater as busy:  # this RMA, or another of the order, at the same moment
            raise ProblemError(
                409,
                "Conflict",
                f"RMA {body.rma_id}: {busy}; ask again",
                headers={"Retry-After": "1"},
            ) from None
        except PermanentError as refused:  # Odoo's refusal, an order without an address
            raise ProblemError(422, "Unprocessable Content", str(refused)) from None
        except TransientError as unreachable:
            log.warning("RMA %s not taken: Odoo unreachable (%s)", body.rma_id, unreachable)
            raise ProblemError(
                503,
                "Service Unavailable",
                "Odoo cannot be reached; try again",
                headers={"Retry-After": "30"},
            ) from None

    async def _request_return(body: RmaRequest) -> web.Response:
        gateway = runtime.resource(GATEWAY)
        fingerprint = _fingerprint(body)
        once = runtime.once_only(str)
        key = f"odoo:rma:{body.rma_id}"
        earlier = await once.result_of(key)
        if earlier is not None and earlier != fingerprint:
            raise _requested_otherwise(body.rma_id)
        delivery = await _delivery(gateway, body.order_ref)
        accepted = RmaAccepted(
            return_id=body.rma_id,
            order_ref=delivery.name,
            odoo_picking_id=delivery.id,
            lines=body.lines,
        )
        if earlier is not None:  # the same request again: answered as the first time
            return web.Response(
                body=msgspec.json.encode(accepted), status=200, content_type="application/json"
            )
        async with gateway.pickings.hold(delivery.id):
            ledger = await RmaLedger(runtime.buckets[RMA_BUCKET], delivery).load()
            lines = await _lines(gateway, body, delivery, ledger)
            requested = await return_requested(
                gateway.reader,
                gateway.settings.odoo_carrier_names,
                delivery,
                return_id=body.rma_id,
                lines=lines,
                return_picking_id=None,
                requested_at=datetime.now(UTC),
            )
            # Taken before it is published: a crash between the two leaves goods held for an
            # RMA that the same request, asked again, publishes.
            await ledger.take(body.rma_id, {line.sku: line.quantity.value for line in lines})
            return await _publish_once(body, fingerprint, requested, accepted)

    async def _publish_once(
        body: RmaRequest, fingerprint: str, requested: ReturnRequested, accepted: RmaAccepted
    ) -> web.Response:
        once = runtime.once_only(str)
        key = f"odoo:rma:{body.rma_id}"

        async def publish() -> str:
            await runtime.publisher.publish(
                requested, fact_id=fact_id("odoo", "rma", body.rma_id, "requested")
            )
            log.info("return %s requested for order %s", body.rma_id, requested.order_ref)
            return fingerprint

        # Two requests at once under one id: one publishes, the other sees its fingerprint.
        stored = await once.run(key, publish)
        if stored != fingerprint:
            raise _requested_otherwise(body.rma_id)
        return web.Response(
            body=msgspec.json.encode(accepted), status=202, content_type="application/json"
        )

    return [web.post(RMA_PATH, request_return)]
