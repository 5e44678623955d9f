"""The gateway's RMA API (issue 20): ``POST /returns`` for delivered goods publishes one
ReturnRequested without a return picking (the orchestrator has Odoo make it); a repeat is
answered as before; everything it cannot take is a problem answer, nothing published."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
from nats.aio.client import Client as NatsClient

from tests.services.odoo_gateway.stage import PATIENCE, OdooStage, published, wait_for_events
from waybill_contracts.events import ReturnRequested
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.return_pickings import (
    ReturnedLine,
    ReturnPicking,
    ReturnRequest,
    create_return,
)
from waybill_runtime.testing.tokens import bearer
from waybill_runtime.testing.waiting import eventually


def delivered(stage: OdooStage) -> str:
    """An order of 3 x WB-0001 and 2 x WB-0002, delivered: its ref (the delivery's name)."""
    order = stage.new_order(("WB-0001", 3), ("WB-0002", 2))
    stage.sandbox.deliver_order(order.name)
    [delivery] = stage.sandbox.order(order.name).pickings
    return str(delivery)


def rma(rma_id: str, order_ref: str, **lines: float) -> dict[str, Any]:
    return {
        "rma_id": rma_id,
        "order_ref": order_ref,
        "lines": [{"sku": sku.replace("_", "-"), "quantity": q} for sku, q in lines.items()],
    }


async def post(
    stage: OdooStage, body: Any, headers: dict[str, str] | None = None, *, raw: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=PATIENCE) as session,
        session.post(
            f"{stage.gateway_url}/returns",
            headers=headers,
            **({"data": raw} if raw is not None else {"json": body}),
        ) as answer,
    ):
        return answer.status, await answer.json(content_type=None)


async def test_an_rma_for_delivered_goods_is_one_return_requested(
    stage: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    keys = stage.api_keys
    order_ref = delivered(stage)
    caller = bearer(keys, "operator")
    body = rma("RMA-100", order_ref, WB_0001=2, WB_0002=1)
    body["lines"][0]["reason"] = "too small"
    async with stage.gateway(nats_url, nats_prefix):
        status, answer = await post(stage, body, caller)
        assert status == 202, answer
        # The same RMA again (a retry after a lost answer): the same answer, nothing new.
        again, repeated = await post(stage, body, caller)
        assert (again, repeated) == (200, answer)
        other, conflict = await post(stage, rma("RMA-100", order_ref, WB_0001=1), caller)
        assert other == 409 and "RMA-100 was requested already" in conflict["detail"]
        [requested] = await published(nc, nats_prefix, ReturnRequested)
    assert (requested.return_id, requested.order_ref) == ("RMA-100", order_ref)
    assert requested.odoo_return_picking_id is None
    assert requested.odoo_sale_order_id is not None and requested.odoo_picking_id > 0
    assert [(line.sku, line.quantity.value, line.reason) for line in requested.lines] == [
        ("WB-0001", Decimal(2), "too small"),
        ("WB-0002", Decimal(1), None),
    ]
    assert all(line.odoo_move_id for line in requested.lines)
    assert requested.customer.name and requested.pickup_address.city
    assert (
        answer["return_id"] == "RMA-100" and answer["odoo_picking_id"] == requested.odoo_picking_id
    )


async def test_what_the_rma_api_cannot_take_is_a_problem_answer_and_publishes_nothing(
    stage17: OdooStage, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = stage17
    keys = stage.api_keys
    order_ref = delivered(stage)
    undelivered = stage.new_order(("WB-0001", 1))
    [open_ref] = stage.sandbox.order(undelivered.name).pickings
    caller = bearer(keys, "operator")
    async with stage.gateway(nats_url, nats_prefix):
        # An earlier RMA took 2 of the 3 delivered WB-0001.
        assert (await post(stage, rma("RMA-1", order_ref, WB_0001=2), caller))[0] == 202
        cases: list[tuple[Any, dict[str, str] | None, int, str]] = [
            (rma("RMA-2", "WH/OUT/99999", WB_0001=1), caller, 404, "no order 'WH/OUT/99999'"),
            (rma("RMA-2", str(open_ref), WB_0001=1), caller, 409, "is not delivered"),
            (rma("RMA-2", order_ref, WB_0001=2), caller, 422, "only 1 of"),
            (rma("RMA-2", order_ref, WB_0002=3), caller, 422, "only 2 of"),
            (rma("RMA-2", order_ref, WB_0003=1), caller, 422, "WB-0003 was not delivered"),
            (
                {**rma("RMA-2", order_ref), "lines": [{"sku": "WB-0001", "quantity": 1}] * 2},
                caller,
                422,
                "named twice",
            ),
            (rma("RMA-2", order_ref, WB_0001=0), caller, 422, "quantity"),
            (rma("RMA-2", order_ref), caller, 422, "lines"),
            (
                {"order_ref": order_ref, "lines": [{"sku": "WB-0001", "quantity": 1}]},
                caller,
                422,
                "rma_id",
            ),
            (rma("RMA 2 !", order_ref, WB_0001=1), caller, 422, "rma_id"),
            (rma("RMA-2", order_ref, WB_0001=1), None, 401, ""),
            (rma("RMA-2", order_ref, WB_0001=1), bearer(keys, "viewer"), 403, ""),
        ]
        for body, headers, status, detail in cases:
            got, problem = await post(stage, body, headers)
            assert (got, problem.get("status")) == (status, status), (body, problem)
            assert detail in str(problem.get("detail", "")) + str(problem), (body, problem)
        not_json, problem = await post(
            stage, None, {**caller, "Content-Type": "text/plain"}, raw=b"RMA-2"
        )
        assert not_json == 415, problem
        requested = await published(nc, nats_prefix, ReturnRequested)
    assert [r.return_id for r in requested] == ["RMA-1"]


async def unmarked_return(
    stage: OdooStage, odoo: OdooClient, delivery: str, reference: str, sku: str, quantity: int
) -> ReturnPicking:
    """A return picking made by Odoo's wizard, as the wizard leaves it: origin ``Return of
    <delivery>``, without the reference the gateway marks an RMA's picking with."""
    line = ReturnedLine(sku=sku, quantity=Decimal(quantity))
    made = await create_return(
        odoo, ReturnRequest(reference=reference, delivery=delivery, lines=(line,))
    )
    stage.sandbox.registry.write(
        "stock.picking", [made.id], {"origin": f"Return of {delivery}"}, uid=2
    )
    return made


async def test_an_rmas_picking_seen_before_the_gateway_marks_it_is_not_a_second_return(
    any_odoo: OdooStage, odoo: OdooClient, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    stage = any_odoo
    # Odoo's return wizard makes the RMA's picking as "Return of WH/OUT/..." and the gateway
    # marks it with the RMA in a second call: the incoming-picking webhook of that moment
    # must not announce the same goods as a return made in Odoo (a second label and email).
    order_ref = delivered(stage)
    caller = bearer(stage.api_keys, "operator")
    async with stage.gateway(nats_url, nats_prefix):
        status, answer = await post(stage, rma("RMA-7", order_ref, WB_0001=2), caller)
        assert status == 202, answer
        made = await unmarked_return(stage, odoo, order_ref, "RMA-7", "WB-0001", 2)
        assert await stage.post_webhook("stock.picking", made.id) == 202
        await eventually(
            lambda: stage.checked("webhook", "ignored"),
            until=lambda ignored: ignored >= 1,
            what="the RMA's unmarked picking left to the RMA",
        )
        # A return an Odoo user made of the rest of the delivery is still a return.
        user_made = await unmarked_return(stage, odoo, order_ref, "user", "WB-0002", 1)
        assert await stage.post_webhook("stock.picking", user_made.id) == 202
        requests = await wait_for_events(nc, nats_prefix, ReturnRequested, count=2)
    assert sorted((r.return_id, r.odoo_return_picking_id) for r in requests) == sorted(
        [("RMA-7", None), (user_made.name, user_made.id)]
    )
