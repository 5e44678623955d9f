"""Returns on the control tower: each return where its latest step puts it, those wanting a
person first, and an operator's retry of a return's step sent to the orchestrator in their name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from nats.aio.client import Client as NatsClient

from tests.services.auditor.test_control_tower_actions import form_of, post
from tests.services.auditor.tower import page, rows_of, running_tower, send
from tests.services.orchestrator.bus import wait_for_commands
from waybill_contracts.events.returns import (
    CreditNoteRefused,
    ReturnCompleted,
    ReturnLabelBooked,
    ReturnRequested,
)
from waybill_contracts.examples import example_of
from waybill_contracts.messages import Event
from waybill_contracts.operations import RetryReturnStep
from waybill_runtime.testing.waiting import eventually

NOW = datetime.now(UTC)
RETRY = "/tower/actions/retry-return-step"


async def test_returns_are_listed_by_their_latest_step_and_an_operator_retries_one(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with (
        running_tower(nats_url, nats_prefix) as tower,
        tower.session("operator", subject="dana") as operator,
    ):

        async def step(event: Event, return_id: str, ref: str, minutes_ago: int) -> None:
            changed = msgspec.structs.replace(event, return_id=return_id, order_ref=ref)
            at = NOW - timedelta(minutes=minutes_ago)
            await send(nc, tower.subjects, changed, source=type(event).publishers[0],
                       correlation=return_id, time=at)  # fmt: skip

        await step(example_of(ReturnRequested), "RMA-1", "WH/OUT/00001", 30)
        await step(example_of(ReturnLabelBooked), "RMA-1", "WH/OUT/00001", 29)
        await step(example_of(ReturnRequested), "RMA-2", "WH/OUT/00002", 20)
        await step(example_of(CreditNoteRefused), "RMA-2", "WH/OUT/00002", 10)
        await step(example_of(ReturnRequested), "RMA-3", "WH/OUT/00003", 50)
        await step(example_of(ReturnCompleted), "RMA-3", "WH/OUT/00003", 40)
        soup = await eventually(
            lambda: page(operator, "/tower/returns"),
            # Every step audited (the auditor stores messages as they come, several at once).
            until=lambda s: (
                len(s.select("table.returns tr[data-return]")) == 3
                and all(
                    latest in s.get_text()
                    for latest in ("label sent", "credit note refused", "completed")
                )
            ),
            what="three returns on the page, each at its latest step",
        )
        rows = rows_of(soup, "table.returns tr[data-return]")
        # Wanting a person first, then open, then finished (no retry for a finished one).
        assert [row[:3] for row in rows] == [
            ["RMA-2", "WH/OUT/00002", "credit note refused"],
            ["RMA-1", "WH/OUT/00001", "label sent"],
            ["RMA-3", "WH/OUT/00003", "completed"],
        ]
        troubled = soup.select_one("tr[data-return='RMA-2']")
        assert troubled is not None and "stuck" in (troubled.get("class") or [])
        assert not soup.select("tr[data-return='RMA-3'] form")
        row = soup.select_one("tr[data-return='RMA-2']")
        assert row is not None
        fields = form_of(row, RETRY)  # type: ignore[arg-type]
        fields["note"] = "period unlocked in Odoo"
        status, location, _ = await post(operator, RETRY, fields)
        assert status == 303 and location == "/tower/returns?done=retry-return-step"
        [sent] = [
            d.message
            for d in await wait_for_commands(nc, tower.subjects, {"RetryReturnStep": 1})
            if isinstance(d.message, RetryReturnStep)
        ]
        async with tower.session("viewer") as viewer:
            seen = await page(viewer, "/tower/returns")
            forged = {**fields, "action_id": "b" * 32}
            status, _, _ = await post(viewer, RETRY, forged)
    assert (sent.return_id, sent.operator, sent.note) == (
        "RMA-2",
        "dana",
        "period unlocked in Odoo",
    )
    assert not seen.select(f"form[action='{RETRY}']") and status == 403
