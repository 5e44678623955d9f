"""The WMS client's expected returns against the WMS sandbox: announce, find, cancel, refusals."""

from __future__ import annotations

import msgspec
import pytest

from tests.services.wms_bridge.test_wms_client import client_and_wms
from waybill_runtime.outcomes import Outcome, classify
from waybill_wms_bridge.return_wire import (
    ReturnStatus,
    WmsReturnLineRequest,
    WmsReturnRequest,
)
from waybill_wms_bridge.wms_client import WmsConflict, WmsRejected, WmsUnavailable


def return_request(ref: str) -> WmsReturnRequest:
    return WmsReturnRequest(
        client_return_ref=ref,
        warehouse="WH1",
        lines=[
            WmsReturnLineRequest(line_no=1, sku="MUG-BLUE", qty=2, uom="EA"),
            WmsReturnLineRequest(line_no=2, sku="TEA-EARL", qty=1, uom="EA"),
        ],
        tracking_number="EZ1000000007",
        carrier="carrier-a",
        original_order_ref="WH/OUT/1",
        reason="damaged in transit",
    )


async def test_announcing_a_return_twice_gives_back_the_same_return() -> None:
    async with client_and_wms() as (client, wms):
        first = await client.expect_return(return_request("RET/1"))
        second = await client.expect_return(return_request("RET/1"))
        found = await client.find_return("RET/1")
        nothing = await client.find_return("RET/404")
    assert first.return_id == second.return_id
    assert found is not None and found.return_id == first.return_id
    assert nothing is None
    assert first.status == ReturnStatus.EXPECTED
    assert first.tracking_number == "EZ1000000007"
    assert [(line.sku, line.qty_expected) for line in first.lines] == [
        ("MUG-BLUE", 2),
        ("TEA-EARL", 1),
    ]
    assert len(wms.returns.returns) == 1
    assert wms.returns.creations["RET/1"] == 2


async def test_the_same_return_ref_with_other_content_is_a_permanent_conflict() -> None:
    async with client_and_wms() as (client, _wms):
        await client.expect_return(return_request("RET/2"))
        changed = msgspec.structs.replace(return_request("RET/2"), reason="changed my mind")
        with pytest.raises(WmsConflict) as refused:
            await client.expect_return(changed)
    assert refused.value.status == 409
    assert classify(refused.value).outcome is Outcome.DEAD_LETTER


async def test_an_invalid_return_is_refused_for_good_with_the_wms_reason() -> None:
    bad = msgspec.structs.replace(return_request("RET/3"), lines=[])
    async with client_and_wms() as (client, wms):
        with pytest.raises(WmsRejected) as refused:
            await client.expect_return(bad)
    assert refused.value.status == 422
    assert "lines" in refused.value.detail
    assert classify(refused.value).outcome is Outcome.DEAD_LETTER
    assert not wms.returns.returns


async def test_a_return_is_cancelled_before_receipt_but_not_after() -> None:
    async with client_and_wms() as (client, wms):
        early = await client.expect_return(return_request("RET/4"))
        cancelled = await client.cancel_return(early.return_id)
        late = await client.expect_return(return_request("RET/5"))
        wms.returns.receive("RET/5")
        with pytest.raises(WmsConflict) as refused:
            await client.cancel_return(late.return_id)
    assert cancelled.status == ReturnStatus.CANCELLED
    assert cancelled.cancelled_at is not None
    assert "can no longer be cancelled" in refused.value.detail


async def test_the_inspection_verdict_is_read_per_line() -> None:
    async with client_and_wms() as (client, wms):
        await client.expect_return(return_request("RET/6"))
        wms.returns.receive("EZ1000000007")
        wms.returns.inspect("RET/6")
        found = await client.find_return("RET/6")
    assert found is not None
    assert found.status == ReturnStatus.INSPECTED
    assert found.inspected_at is not None
    assert [
        (line.sku, line.qty_received, line.qty_resellable, line.qty_damaged, line.qty_missing)
        for line in found.lines
    ] == [("MUG-BLUE", 2, 2, 0, 0), ("TEA-EARL", 1, 1, 0, 0)]


async def test_a_failing_wms_leaves_the_return_to_be_announced_again() -> None:
    async with client_and_wms(wms_retry_attempts=2) as (client, wms):
        wms.faults.set("expect_return", error_rate=1.0)
        with pytest.raises(WmsUnavailable) as failed:
            await client.expect_return(return_request("RET/7"))
    assert classify(failed.value).outcome is Outcome.RETRY
    assert wms.calls()["expect_return"] == 2
    assert not wms.returns.returns
