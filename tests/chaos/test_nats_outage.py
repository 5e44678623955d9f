"""NATS down while the carriers send tracking webhooks: reconciliation recovers the milestones.

The sandboxes run in their standard profile here, as slow partners do: the
carriers walk each label through its milestones a scan every 2 s and give up
on a webhook after three refused tries. Once a quarter of the burst's labels
are bought, nats-server is stopped (the supervisor is paused so it stays down)
until the carriers have given up on several tracking webhooks, which the
carrier-router could not pass on; then it is started again on the same store.
Those milestones exist only at the carriers now: the router's tracking
reconciliation (quiet after 8 s here, rounds every 2 s) asks for them, and
every order still reaches delivered, with nothing lost or done twice.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.counts import ChaosCounts, assert_nothing_lost_or_repeated
from tests.chaos.harness import (
    Supervisor,
    burst,
    chaos_stack,
    supervising,
    tracking_lookups,
    webhooks_failed,
)
from waybill_runtime.local.stack import LocalStack
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.profile import SandboxProfile

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(900)]

ORDERS = 24
OUTAGE_AT_LEAST_S = 10.0
"""Down for at least this long: several scans of every label already bought fall in it."""
GIVEN_UP_AT_LEAST = 3
"""Tracking webhooks the carriers must have given up on before NATS comes back."""

# The router at its own default purchase pace (the bench raises it for carriers without a
# limit; the standard profile's carriers have one).
STANDARD_PURCHASE_PACE = {
    "WAYBILL_CARRIER_PURCHASE_RATE_PER_S": "4",
    "WAYBILL_CARRIER_PURCHASE_BURST": "4",
}


async def _given_up(carriers: tuple[str, ...]) -> int:
    return sum(await asyncio.gather(*(webhooks_failed(url) for url in carriers)))


async def _nats_down_while_tracking_arrives(
    stack: LocalStack, supervisor: Supervisor
) -> tuple[ChaosCounts, int, int]:
    assert stack.nats is not None
    async with burst(stack, ORDERS) as flow:
        carriers = flow.urls.carriers
        await eventually(
            flow.labels_bought,
            until=lambda bought: bought >= ORDERS // 4,
            timeout_s=300,
            interval_s=0.2,
            what="a quarter of the labels bought",
        )
        with supervisor.paused():
            await asyncio.to_thread(stack.nats.stop)
            down_since = time.monotonic()
            given_up = await eventually(
                lambda: _given_up(carriers),
                until=lambda n: (
                    n >= GIVEN_UP_AT_LEAST and time.monotonic() - down_since >= OUTAGE_AT_LEAST_S
                ),
                timeout_s=300,
                interval_s=0.5,
                what=f"{GIVEN_UP_AT_LEAST} tracking webhooks given up while NATS is down",
            )
            await asyncio.to_thread(stack.nats.restart)
        counts = await flow.finished()
        asked = sum(await asyncio.gather(*(tracking_lookups(url) for url in carriers)))
    return counts, given_up, asked


def test_tracking_webhooks_lost_while_nats_is_down_are_recovered_by_reconciliation() -> None:
    with (
        chaos_stack(profile=SandboxProfile.STANDARD, settings=STANDARD_PURCHASE_PACE) as stack,
        supervising(stack) as supervisor,
    ):
        counts, given_up, asked = asyncio.run(_nats_down_while_tracking_arrives(stack, supervisor))
        # The outage did cost webhooks, and the router asked the carriers for what it missed.
        assert given_up >= GIVEN_UP_AT_LEAST
        assert asked > 0
        # Every order delivered (lost orders counts one without its delivery recorded).
        assert_nothing_lost_or_repeated(counts)
