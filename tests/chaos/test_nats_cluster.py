"""The three-node NATS cluster mid-burst: one node killed, then the whole cluster restarted.

The stack runs `waybill up --cluster 3`'s three embedded nats-server nodes routed
into one JetStream cluster, streams and buckets with three replicas, and two
replicas of every service given every node's URL. Losing one node leaves a
quorum: the services carry on through the other two and the supervisor starts
the lost one again on its store, where it catches up. Restarting every node at
once stops the bus for a while: the services reconnect and what was in flight
is redelivered or republished. Either way, nothing is lost or done twice.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos.counts import ChaosCounts, assert_nothing_lost_or_repeated
from tests.chaos.harness import Supervisor, burst, chaos_stack, supervising
from waybill_runtime.local.stack import LocalStack

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(1200)]

ORDERS = 120
NODES = 3
KILLED_NODE = 1  # not the first: the stack's own connections name it first


async def _kill_one_node(stack: LocalStack, supervisor: Supervisor) -> tuple[ChaosCounts, int]:
    async with burst(stack, ORDERS) as flow:
        recorded = await flow.reached(ORDERS // 3)
        await asyncio.to_thread(stack.kill_nats_node, KILLED_NODE)
        counts = await flow.finished()
        await asyncio.to_thread(stack.wait_nats_healthy, 120)
    return counts, recorded


def test_one_node_of_three_killed_mid_burst_loses_and_repeats_nothing() -> None:
    with chaos_stack(cluster=NODES) as stack, supervising(stack) as supervisor:
        counts, recorded_at_kill = asyncio.run(_kill_one_node(stack, supervisor))
        node = stack.nats_nodes[KILLED_NODE].name
        assert recorded_at_kill < ORDERS
        assert supervisor.restarts_of(f"nats-server {node}") >= 1
        assert_nothing_lost_or_repeated(counts)


async def _restart_the_cluster(
    stack: LocalStack, supervisor: Supervisor
) -> tuple[ChaosCounts, int]:
    async with burst(stack, ORDERS) as flow:
        recorded = await flow.reached(ORDERS // 3)
        with supervisor.paused():  # the restart is the test's, not a crash to repair
            await asyncio.to_thread(stack.restart_nats_cluster)
        counts = await flow.finished()
    return counts, recorded


def test_the_whole_cluster_restarted_mid_burst_loses_and_repeats_nothing() -> None:
    with chaos_stack(cluster=NODES) as stack, supervising(stack) as supervisor:
        counts, recorded_at_restart = asyncio.run(_restart_the_cluster(stack, supervisor))
        assert recorded_at_restart < ORDERS
        assert_nothing_lost_or_repeated(counts)
