"""Returns at the warehouse, against the WMS sandbox: ExpectReturn announces the parcel once,
the dock's receipt and inspection come back as ReturnReceived and ReturnInspected (once each,
however often the WMS sends them), CancelExpectedReturn calls it off, and bad input is refused
with a reason."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from nats.aio.client import Client as NatsClient

from tests.services.wms_bridge.harness import Rig, wms_and_bridge
from waybill_contracts.events import ReturnInspected, ReturnReceived
from waybill_contracts.examples import example_of
from waybill_contracts.model import Quantity
from waybill_contracts.return_commands import CancelExpectedReturn, ExpectReturn
from waybill_contracts.returns import ReturnLine
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.wms.return_records import InspectionPlan, LineFinding


def expect(return_id: str, *, uom: str = "Units") -> ExpectReturn:
    lines = (
        ReturnLine(line_no=1, sku="MUG-BLUE", quantity=Quantity(value=Decimal(3), uom=uom)),
        ReturnLine(
            line_no=2,
            sku="TEA-EARL",
            quantity=Quantity(value=Decimal(1), uom=uom),
            reason="not as described",
        ),
    )
    return msgspec.structs.replace(
        example_of(ExpectReturn),
        return_id=return_id,
        lines=lines,
        warehouse=None,
        tracking_number=f"TRK-{return_id}",
    )


async def test_an_announced_return_is_received_and_inspected_as_events_once_each(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    rid = "WH/RET/00011"
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        await rig.send(expect(rid))
        await rig.send(expect(rid))  # re-sent by a deadline: the WMS keeps one
        await rig.commands_settled()
        assert rig.wms.returns.creations[rid] == 2
        [announced] = [r for r in rig.wms.returns.returns.values() if r.client_return_ref == rid]
        assert [(line.sku, line.uom, line.qty_expected) for line in announced.lines] == [
            ("MUG-BLUE", "EA", 3.0),
            ("TEA-EARL", "EA", 1.0),
        ]
        plan = InspectionPlan(lines=[LineFinding(sku="MUG-BLUE", damaged=1.0, missing=1.0)])
        rig.wms.returns.plan_inspection(rid, plan)
        rig.wms.returns.receive(f"TRK-{rid}")  # the dock matches the parcel by tracking number
        rig.wms.returns.inspect(rid)
        await rig.wms.settle()
        [received] = await rig.wait_for(ReturnReceived, rid)
        [inspected] = await rig.wait_for(ReturnInspected, rid)
        # The WMS sends the inspected return again (a lost answer): nothing new is stored.
        hook = rig.wms.sent_webhooks("return.inspected")[0]
        status, answer = await rig.post_webhook(hook.body.encode())
        assert (status, answer["new"]) == (202, 0)
        assert len(await rig.events(ReturnReceived, rid)) == 1
    assert received.warehouse_return_id == announced.return_id
    assert received.order_ref == inspected.order_ref == expect(rid).order_ref
    assert received.tracking_number == f"TRK-{rid}"
    by_sku = {line.sku: line for line in inspected.lines}
    mug = by_sku["MUG-BLUE"]
    assert [mug.resellable.value, mug.damaged.value, mug.missing.value] == [Decimal(1)] * 3
    assert mug.resellable.uom == "Units"  # back in Odoo's words
    tea = by_sku["TEA-EARL"]
    assert [tea.resellable.value, tea.damaged.value, tea.missing.value] == [
        Decimal(1),
        Decimal(0),
        Decimal(0),
    ]


async def test_a_return_called_off_before_receipt_is_cancelled_at_the_wms(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    rid = "WH/RET/00012"
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        await rig.send(expect(rid))
        await rig.commands_settled()
        call_off = CancelExpectedReturn(
            return_id=rid, order_ref="WH/OUT/00042", reason="the return was cancelled"
        )
        await rig.send(call_off)
        await rig.send(call_off)  # cancelling twice is done
        never = CancelExpectedReturn(
            return_id="WH/RET/never", order_ref="WH/OUT/00042", reason="never announced"
        )
        await rig.send(never)
        await rig.commands_settled()
        assert await rig.dead_letters() == []
        [held] = [r for r in rig.wms.returns.returns.values() if r.client_return_ref == rid]
        assert held.status == "cancelled"
        assert await rig.events(ReturnReceived, rid) == []


async def test_a_return_in_a_unit_without_a_wms_code_is_a_dead_letter_naming_it(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        await rig.send(expect("WH/RET/00013", uom="Crates"))
        await rig.commands_settled()
        [letter] = await rig.dead_letters()
        assert "'Crates' has no WMS code" in letter.error_message
        assert rig.wms.returns.creations["WH/RET/00013"] == 0


async def test_a_return_webhook_of_the_wrong_shape_is_refused_with_a_reason(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    body = msgspec.json.encode(
        {
            "event_id": "evt-r1",
            "event_type": "return.received",
            "occurred_at": "2026-12-06T10:00:00Z",
            "warehouse": "WH1",
            "data": {"return_id": "R-1"},
        }
    )
    async with wms_and_bridge(nc, nats_url, nats_prefix) as rig:
        status, problem = await rig.post_webhook(body)
    assert status == 422
    assert "is not an expected return" in problem["detail"]


async def test_the_poll_recovers_receipt_and_inspection_when_every_webhook_is_lost(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    rid = "WH/RET/00014"
    lose_all = DeliveryPolicy(mode=DeliveryMode.LOSSY, drop_rate=1.0)
    async with wms_and_bridge(
        nc, nats_url, nats_prefix, wms={"delivery": lose_all}, wms_reconcile_interval_s=0.2
    ) as rig:
        await rig.send(expect(rid))
        await rig.commands_settled()
        rig.wms.returns.receive(rid)
        rig.wms.returns.inspect(rid)
        [inspected] = await rig.wait_for(ReturnInspected, rid)
        [received] = await rig.wait_for(ReturnReceived, rid)
        # Later rounds see the same return again and store nothing new.
        rounds = rig.wms.calls().get("list_returns", 0)
        await eventually(
            lambda: _list_return_calls(rig),
            until=lambda n: n >= rounds + 3,
            what="three more reconciliation rounds",
        )
        assert len(await rig.events(ReturnInspected, rid)) == 1
        assert len(await rig.events(ReturnReceived, rid)) == 1
    # Nothing came by webhook: the poll brought both.
    assert [hook.outcome for hook in rig.wms.sent_webhooks("return.inspected")] == ["dropped"]
    assert received.order_ref == inspected.order_ref == expect(rid).order_ref


async def _list_return_calls(rig: Rig) -> int:
    return rig.wms.calls().get("list_returns", 0)
