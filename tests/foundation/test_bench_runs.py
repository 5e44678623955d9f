"""`make bench` runs to completion: every stage drains its stream, reports a rate and memory;
the end-to-end stage ships every order of each burst and reports each process's cost.

Only that it runs and what it reports are checked; the figures themselves are
never asserted (shared machines are noisy), they go into docs/benchmarks.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from waybill_demo import FLOW_SERVICES
from waybill_runtime.local.registry import installed_services

REPO = Path(__file__).resolve().parents[2]
# Every installed service runs in the stack the bench starts (a scaffolded one too).
SERVICES = set(installed_services())


@pytest.mark.long  # every stage of the benchmark and a burst through the stack: make long
def test_the_benchmark_runs_every_stage_and_reports_ratios(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench",
            "--messages",
            "300",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--stages",
            "raw,runtime,faststream,raw-envelope",
            "--json",
            str(out),
            "--timeout",
            "90",
            "--e2e-orders",
            "12,4",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert [stage["key"] for stage in figures["stages"]] == [
        "raw",
        "runtime",
        "faststream",
        "raw-envelope",
    ]
    for stage in figures["stages"]:
        assert len(stage["rates"]) == 1 and stage["rates"][0] > 0
        assert stage["peak_heap_mib"] > 0 and stage["heap_ratio_to_baseline"] > 0
        assert stage["ratio_to_baseline"] == pytest.approx(
            stage["median"] / figures["stages"][0]["median"]
        )
    assert "runtime / raw nats-py = " in result.stdout
    # Smallest burst first, each on its own stack, every order shipped and done in Odoo:
    # the standard orders asked for, and the urgent one released after them.
    assert [burst["outcome"]["orders"] for burst in figures["bursts"]] == [5, 13]
    for burst in figures["bursts"]:
        orders = burst["outcome"]["orders"]
        assert burst["outcome"]["done_in_odoo"] == orders
        assert len(burst["outcome"]["to_label_s"]) == orders - 1
        assert burst["outcome"]["express_to_label_s"] > 0
        assert 1 <= burst["outcome"]["express_label_rank"] <= orders
        assert burst["outcome"]["duplicate_labels"] == 0
        assert set(burst["services"]) == SERVICES
        # Every service's cost is measured; those an order cannot ship without surely work.
        assert all(burst["cpu_ms_per_order"][name] >= 0 for name in burst["services"])
        assert all(burst["cpu_ms_per_order"][name] > 0 for name in FLOW_SERVICES)
        assert burst["cpu_ms_per_order"]["nats-server"] > 0
        assert burst["stream_messages_per_order"] > 0 and burst["kv_writes_per_order"] > 0
    assert "services' CPU per order, 13 vs 5 orders: " in result.stdout
    assert "express order release→label s" in result.stdout


BACKLOG = 60


@pytest.mark.long  # a stack with a backlog of 60 orders: make long
def test_the_benchmark_measures_an_urgent_order_behind_a_backlog_in_the_mesh(
    tmp_path: Path,
) -> None:
    """With ``--backlog-orders`` the carrier-router is held until every standard order's
    booking waits, an urgent order is released last, then the router starts: the lane
    has its label bought among the first, where one queue would have it bought last."""
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench",
            *("--stages", "raw", "--messages", "300", "--rounds", "1", "--warmup", "0"),
            *("--no-memory", "--e2e-orders", "0", "--backlog-orders", str(BACKLOG)),
            *("--json", str(out)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    backlog = json.loads(out.read_text())["backlog"]
    assert backlog["standard_orders"] == BACKLOG
    # Ahead of the backlog that waited before it, not 61st: when the router starts, the
    # standard lane's 16 handler slots may already be buying when the urgent booking is
    # read (its rank was 1 in one run, 17 in another), never the whole backlog.
    assert 1 <= backlog["express_label_rank"] <= BACKLOG // 3
    # Bought after the router started, and not after the backlog's last label.
    assert 0 < backlog["express_after_resume_s"] <= backlog["backlog_drained_s"]
    assert "the urgent order's label, rank" in result.stdout
