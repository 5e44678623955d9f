"""The WMS sandbox's returns: expected returns, receipt, inspection outcomes, signed webhooks."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.sandboxes import test_wms_sandbox as wms
from tests.sandboxes.inbox import Inbox
from tests.sandboxes.signatures import tampered, wms_signature_valid
from waybill_sandboxes.delivery import DeliveryPolicy
from waybill_sandboxes.server import RunningSandbox

HEADERS = wms.HEADERS
StartWms = wms.StartWms
# The WMS fixture of the sandbox's own tests: webhooks go to the test inbox.
start_wms = wms.start_wms


def return_body(ref: str = "RET-1001", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_return_ref": ref,
        "warehouse": "WH1",
        "tracking_number": "EZ1000000042",
        "carrier": "carrier-a",
        "original_order_ref": "SO-1001",
        "reason": "wrong size",
        "lines": [{"sku": "BOLT-M8", "qty": 3, "uom": "EA"}, {"sku": "NUT-M8", "qty": 12}],
    }
    body.update(overrides)
    return body


async def expect(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{url}/api/v1/returns", json=body, headers=HEADERS) as resp:
        return resp.status, await resp.json(content_type=None)


async def admin(
    http: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{url}/_sandbox/returns/{path}", json=body) as resp:
        return resp.status, await resp.json()


async def on_hand(http: aiohttp.ClientSession, url: str, sku: str) -> float:
    async with http.get(f"{url}/api/v1/inventory/{sku}", headers=HEADERS) as resp:
        level: float = (await resp.json())["on_hand"]
        return level


def lines_by_sku(data: dict[str, Any]) -> dict[str, tuple[float, float, float, float]]:
    """SKU → (received, resellable, damaged, missing)."""
    return {
        line["sku"]: (
            line["qty_received"],
            line["qty_resellable"],
            line["qty_damaged"],
            line["qty_missing"],
        )
        for line in data["lines"]
    }


async def test_expected_return_is_created_once_and_a_replay_answers_the_same_return(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    first_status, first = await expect(http, url, return_body())
    replay_status, replay = await expect(http, url, return_body())
    assert (first_status, replay_status) == (201, 200)
    assert first["return_id"] == replay["return_id"]
    assert first["return_id"].startswith("RA-")
    assert first["status"] == "expected"
    assert first["tracking_number"] == "EZ1000000042"
    assert [(li["sku"], li["qty_expected"]) for li in first["lines"]] == [
        ("BOLT-M8", 3),
        ("NUT-M8", 12),
    ]
    assert sandbox.returns.creations["RET-1001"] == 2
    assert len(sandbox.returns.returns) == 1
    async with http.get(f"{url}/api/v1/returns/{first['return_id']}", headers=HEADERS) as resp:
        assert (await resp.json())["client_return_ref"] == "RET-1001"


async def test_reused_return_ref_with_other_content_is_a_conflict(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    await expect(http, url, return_body())
    async with http.post(
        f"{url}/api/v1/returns",
        json=return_body(lines=[{"sku": "BOLT-M8", "qty": 1}]),
        headers=HEADERS,
    ) as resp:
        assert resp.status == 409
        assert resp.content_type == "application/problem+json"
        problem = await resp.json(content_type=None)
    assert problem["title"] == "Duplicate client return ref"
    assert "RET-1001" in problem["detail"]
    assert len(sandbox.returns.returns) == 1


async def test_invalid_returns_are_refused_with_a_problem_naming_the_field(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    for body, field in (
        (return_body(lines=[]), "lines"),
        (return_body(lines=[{"sku": "BOLT-M8", "qty": 0}]), "qty"),
        (return_body(client_return_ref=""), "client_return_ref"),
    ):
        async with http.post(f"{url}/api/v1/returns", json=body, headers=HEADERS) as resp:
            assert resp.status == 422
            assert resp.content_type == "application/problem+json"
            problem = await resp.json(content_type=None)
        assert problem["title"] == "Invalid return"
        assert field in problem["detail"]
    async with http.post(f"{url}/api/v1/returns", json=return_body()) as resp:
        assert resp.status == 401
    assert sandbox.returns.returns == {}


async def test_received_return_is_announced_then_inspected_as_signed_webhooks(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms()
    _, expected = await expect(http, url, return_body())
    before = await on_hand(http, url, "NUT-M8")
    status, done = await admin(http, url, "EZ1000000042/receive")  # by tracking number
    assert status == 200
    assert done["status"] == "inspected"
    await sandbox.settle()

    received = inbox[0].received
    assert [item.json()["event_type"] for item in received] == [
        "return.received",
        "return.inspected",
    ]
    for item in received:
        assert wms_signature_valid(wms.SECRET, item.headers, item.body)
        assert not wms_signature_valid(wms.SECRET, item.headers, tampered(item.body))
        assert item.json()["data"]["return_id"] == expected["return_id"]
    arrival, verdict = (item.json()["data"] for item in received)
    assert arrival["status"] == "received"
    assert lines_by_sku(arrival) == {"BOLT-M8": (3, 0, 0, 0), "NUT-M8": (12, 0, 0, 0)}
    assert verdict["status"] == "inspected"
    assert lines_by_sku(verdict) == {"BOLT-M8": (3, 3, 0, 0), "NUT-M8": (12, 12, 0, 0)}
    assert await on_hand(http, url, "NUT-M8") == before + 12


async def test_inspection_plan_marks_units_damaged_and_missing(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms()
    # Planned before the return is even expected, as a test sets up a scenario.
    async with http.put(
        f"{url}/_sandbox/returns/RET-1001/inspection",
        json={"lines": [{"sku": "BOLT-M8", "damaged": 1, "missing": 1}]},
    ) as resp:
        assert resp.status == 200
    await expect(http, url, return_body())
    before = await on_hand(http, url, "BOLT-M8")
    await admin(http, url, "RET-1001/receive")
    await sandbox.settle()
    arrival, verdict = inbox[0].bodies()
    assert lines_by_sku(arrival["data"])["BOLT-M8"] == (2, 0, 0, 1)
    assert lines_by_sku(verdict["data"]) == {"BOLT-M8": (2, 1, 1, 1), "NUT-M8": (12, 12, 0, 0)}
    assert await on_hand(http, url, "BOLT-M8") == before + 1


async def test_inspection_rejecting_everything_puts_nothing_back_on_the_shelf(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms()
    async with http.put(f"{url}/_sandbox/returns/inspection", json={"reject_all": True}) as resp:
        assert resp.status == 200
    await expect(http, url, return_body())
    before = await on_hand(http, url, "BOLT-M8")
    _, done = await admin(http, url, "RET-1001/receive")
    assert lines_by_sku(done) == {"BOLT-M8": (3, 0, 3, 0), "NUT-M8": (12, 0, 12, 0)}
    assert await on_hand(http, url, "BOLT-M8") == before
    await sandbox.settle()
    assert inbox[0].bodies()[-1]["data"]["lines"][0]["qty_damaged"] == 3


async def test_rejecting_returns_can_be_the_sandboxs_setting(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms(reject_returns=True)
    await expect(http, url, return_body(lines=[{"sku": "BOLT-M8", "qty": 2}]))
    _, done = await admin(http, url, "RET-1001/receive")
    assert lines_by_sku(done) == {"BOLT-M8": (2, 0, 2, 0)}
    async with http.put(f"{url}/_sandbox/returns/inspection", json={"reject_all": "no"}) as resp:
        assert resp.status == 400
    assert sandbox.returns.reject_all


async def test_received_return_can_wait_for_inspection_and_each_step_happens_once(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms()
    await expect(http, url, return_body())
    status, arrival = await admin(http, url, "RET-1001/receive", {"inspect": False})
    assert (status, arrival["status"]) == (200, "received")
    await sandbox.settle()
    assert [b["event_type"] for b in inbox[0].bodies()] == ["return.received"]

    status, verdict = await admin(http, url, "RET-1001/inspect")
    assert (status, verdict["status"]) == (200, "inspected")
    for step in ("receive", "inspect"):
        status, refused = await admin(http, url, f"RET-1001/{step}")
        assert status == 409
        assert "is inspected" in refused["error"]
    status, missing = await admin(http, url, "RET-404/receive")
    assert status == 404
    assert "RET-404" in missing["error"]
    await sandbox.settle()
    assert [b["event_type"] for b in inbox[0].bodies()] == ["return.received", "return.inspected"]


async def test_return_cancelled_before_receipt_cannot_be_received(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms()
    _, expected = await expect(http, url, return_body())
    cancel_url = f"{url}/api/v1/returns/{expected['return_id']}/cancel"
    for _ in range(2):  # a second cancel is answered the same and announced once
        async with http.post(cancel_url, headers=HEADERS) as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "cancelled"
    status, refused = await admin(http, url, "RET-1001/receive")
    assert status == 409
    assert "cancelled" in refused["error"]
    await sandbox.settle()
    assert [b["event_type"] for b in inbox[0].bodies()] == ["return.cancelled"]


async def test_a_parcel_is_matched_to_the_return_still_expected_under_its_tracking_number(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    # Called off, then announced again under a new ref with the same return label.
    sandbox, url = await start_wms()
    _, first = await expect(http, url, return_body("RET-1"))
    async with http.post(
        f"{url}/api/v1/returns/{first['return_id']}/cancel", headers=HEADERS
    ) as resp:
        assert resp.status == 200
    _, second = await expect(http, url, return_body("RET-2"))
    status, done = await admin(http, url, "EZ1000000042/receive")
    assert status == 200
    assert done["return_id"] == second["return_id"]
    assert sandbox.returns.returns[first["return_id"]].status == "cancelled"


async def test_return_cannot_be_cancelled_once_received(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    _, expected = await expect(http, url, return_body())
    await admin(http, url, "RET-1001/receive", {"inspect": False})
    async with http.post(
        f"{url}/api/v1/returns/{expected['return_id']}/cancel", headers=HEADERS
    ) as resp:
        assert resp.status == 409
        assert (await resp.json(content_type=None))["title"] == "Too late to cancel"
    async with http.post(f"{url}/api/v1/returns/RA-999999/cancel", headers=HEADERS) as resp:
        assert resp.status == 404
    assert sandbox.returns.returns[expected["return_id"]].status == "received"


async def test_returns_updated_since_a_watermark_are_listed_for_reconciliation(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    await expect(http, url, return_body("RET-1"))
    _, second = await expect(http, url, return_body("RET-2", tracking_number="EZ2"))
    watermark = second["updated_at"]
    await admin(http, url, "RET-1/receive")
    async with http.get(
        f"{url}/api/v1/returns", params={"updated_since": watermark}, headers=HEADERS
    ) as resp:
        listed = await resp.json()
    # RET-2 changed at the watermark itself (inclusive), RET-1 after it.
    assert [r["client_return_ref"] for r in listed["returns"]] == ["RET-2", "RET-1"]
    async with http.get(
        f"{url}/api/v1/returns", params={"status": "inspected"}, headers=HEADERS
    ) as resp:
        assert [r["client_return_ref"] for r in (await resp.json())["returns"]] == ["RET-1"]
    async with http.get(
        f"{url}/api/v1/returns", params={"updated_since": "yesterday"}, headers=HEADERS
    ) as resp:
        assert resp.status == 400
    assert sandbox.calls()["list_returns"] == 3


async def test_return_webhooks_are_retried_until_the_receiver_takes_them_once(
    start_wms: StartWms, http: aiohttp.ClientSession, inbox: tuple[Inbox, RunningSandbox]
) -> None:
    sandbox, url = await start_wms()
    sandbox.webhooks.configure(policy=DeliveryPolicy(max_attempts=3, retry_backoff_s=0.0))
    inbox[0].failures_left = 2
    await expect(http, url, return_body())
    await admin(http, url, "RET-1001/receive")
    await sandbox.settle()
    records = sandbox.sent_webhooks()
    assert [(r.event_type, r.outcome) for r in records] == [
        ("return.received", "delivered"),
        ("return.inspected", "delivered"),
    ]
    assert records[0].attempts == 3
    delivered = [item.json() for item in inbox[0].received]
    # Two failed POSTs of the first event, then each event taken exactly once.
    assert [d["event_type"] for d in delivered] == ["return.received"] * 3 + ["return.inspected"]
    assert len({d["event_id"] for d in delivered}) == 2


async def test_an_expected_return_survives_a_failed_first_attempt(
    start_wms: StartWms, http: aiohttp.ClientSession
) -> None:
    sandbox, url = await start_wms()
    sandbox.faults.set("expect_return", error_rate=1.0, times=1)
    status, _ = await expect(http, url, return_body())
    assert status == 503
    status, created = await expect(http, url, return_body())
    assert status == 201
    assert sandbox.calls()["expect_return"] == 2
    assert list(sandbox.returns.returns) == [created["return_id"]]
