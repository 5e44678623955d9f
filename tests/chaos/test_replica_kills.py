"""kill -9 a replica of each service in turn, mid-burst: nothing lost, nothing done twice.

Every service runs as two replicas on its shared durables. While a burst of
orders goes through, the first replica of each service (the one the partners'
webhooks reach) is killed with SIGKILL in turn, at evenly spaced points of the
burst; the stack's supervisor starts it again. What it held unacknowledged is
redelivered to the other replica or to itself once back; a webhook refused
while it was down is caught up by the safety nets (Odoo poll, WMS poll,
tracking reconciliation). Whatever happened, the partners see every order
done once: no lost order, no second label, email or Odoo write.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos.counts import ChaosCounts, assert_nothing_lost_or_repeated
from tests.chaos.harness import back_up, burst, chaos_stack, kill_replica, supervising
from waybill_runtime.local.stack import LocalStack, replica_name

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(1200)]

ORDERS = 120
KILLED_REPLICA = 0  # the first: it also receives the partners' webhooks


async def _kill_each_service_in_turn(stack: LocalStack) -> tuple[ChaosCounts, dict[str, int]]:
    services = list(stack.services)
    recorded_at_kill: dict[str, int] = {}
    async with burst(stack, ORDERS) as flow:
        killed: list[tuple[str, int]] = []
        for turn, service in enumerate(services, start=1):
            # Kills spread over the burst, the last well before its end.
            recorded_at_kill[service] = await flow.reached(ORDERS * turn // (len(services) + 2))
            killed.append((service, kill_replica(stack, service, KILLED_REPLICA)))
            print(f"killed {replica_name(service, KILLED_REPLICA)} at {recorded_at_kill[service]}")
        for service, pid in killed:
            await back_up(stack, service, KILLED_REPLICA, pid)
        counts = await flow.finished()
    return counts, recorded_at_kill


def test_a_replica_of_each_service_killed_in_turn_mid_burst_loses_and_repeats_nothing() -> None:
    with chaos_stack() as stack, supervising(stack) as supervisor:
        counts, recorded_at_kill = asyncio.run(_kill_each_service_in_turn(stack))
        restarts = {
            service: supervisor.restarts_of(replica_name(service, KILLED_REPLICA))
            for service in stack.services
        }
        # Inside the stack's block: a failure keeps every process's log (CHAOS_LOGS).
        # Every service was hit, mid-burst, and its replica came back under supervision.
        assert recorded_at_kill and set(recorded_at_kill) == set(restarts) == set(stack.services)
        assert all(done < ORDERS for done in recorded_at_kill.values()), recorded_at_kill
        assert all(n >= 1 for n in restarts.values()), restarts
        assert_nothing_lost_or_repeated(counts)
