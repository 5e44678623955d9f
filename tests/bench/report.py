"""Turning rounds into the figures: medians, ratios to the baseline, a table, JSON."""

from __future__ import annotations

import statistics
from pathlib import Path

import msgspec

from tests.bench.backlog import BacklogFigures
from tests.bench.e2e import BurstFigures
from tests.bench.machine import Machine

# The acceptance line: the runtime keeps at least this share of raw nats-py's rate.
RUNTIME_TARGET = 0.90


class StageFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One stage over all its rounds."""

    key: str
    name: str
    rates: list[float]  # messages per second, one per round, in round order
    cpu_us: list[float]  # this process's CPU per message, microseconds, per round
    wall_s: list[float]  # start to drained, per round (includes the stage's start-up)
    # Peak Python heap growth during one traced, untimed round (None: not measured).
    peak_heap_mib: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def median_cpu_us(self) -> float:
        return statistics.median(self.cpu_us)


class BenchReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a run measured, as written by ``--json``."""

    machine: Machine
    messages: int
    rounds: int
    stages: list[StageFigures]
    baseline: str
    # The end-to-end stage's bursts, smallest first (empty: not run).
    bursts: list[BurstFigures] = msgspec.field(default_factory=list)
    # The express lane behind a backlog in the mesh (None: not run).
    backlog: BacklogFigures | None = None

    def _base(self) -> StageFigures | None:
        return next((s for s in self.stages if s.key == self.baseline), None)

    def ratio(self, figures: StageFigures) -> float | None:
        base = self._base()
        return figures.median / base.median if base is not None else None

    def heap_ratio(self, figures: StageFigures) -> float | None:
        base = self._base()
        if base is None or not base.peak_heap_mib or figures.peak_heap_mib is None:
            return None
        return figures.peak_heap_mib / base.peak_heap_mib


def table(report: BenchReport) -> str:
    """The side-by-side table, the runtime's verdict and the machine."""
    rows = [
        (
            "stage",
            "msgs/s (median)",
            "ratio to raw",
            "CPU µs/msg",
            "peak heap MiB",
            "heap ratio",
            "rounds (msgs/s)",
        )
    ]
    for figures in report.stages:
        ratio, heap_ratio = report.ratio(figures), report.heap_ratio(figures)
        rows.append(
            (
                figures.name,
                f"{figures.median:,.0f}",
                f"{ratio:.2f}" if ratio is not None else "-",
                f"{figures.median_cpu_us:,.0f}",
                f"{figures.peak_heap_mib:,.1f}" if figures.peak_heap_mib is not None else "-",
                f"{heap_ratio:.2f}" if heap_ratio is not None else "-",
                ", ".join(f"{rate:,.0f}" for rate in figures.rates),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if i in (0, 6) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    runtime = next((s for s in report.stages if s.key == "runtime"), None)
    runtime_ratio = report.ratio(runtime) if runtime is not None else None
    if runtime_ratio is not None:
        verdict = "meets" if runtime_ratio >= RUNTIME_TARGET else "is below"
        lines.append("")
        lines.append(
            f"runtime / raw nats-py = {runtime_ratio:.2f}: {verdict} the "
            f"{RUNTIME_TARGET:.2f} target"
        )
    m = report.machine
    lines += [
        "",
        f"{report.messages:,} messages per round, {report.rounds} round(s) per stage, interleaved",
        f"machine: {m.cpu}, {m.cores} cores, {m.memory_gb} GB, {m.os}",
        f"software: {m.python} ({m.event_loop}), nats-server {m.nats_server}, "
        + ", ".join(f"{name} {version}" for name, version in m.packages.items()),
        f"date: {m.date}",
    ]
    return "\n".join(lines)


def write_json(report: BenchReport, path: Path) -> None:
    """The report with medians and ratios added, for comparing runs."""
    document = msgspec.to_builtins(report)
    for entry, figures in zip(document["stages"], report.stages, strict=True):
        entry["median"] = figures.median
        entry["median_cpu_us"] = figures.median_cpu_us
        entry["ratio_to_baseline"] = report.ratio(figures)
        entry["heap_ratio_to_baseline"] = report.heap_ratio(figures)
    for entry, burst in zip(document["bursts"], report.bursts, strict=True):
        entry["services_cpu_ms_per_order"] = burst.services_cpu_ms
        entry["orders_per_s"] = burst.outcome.orders_per_s
    path.write_bytes(msgspec.json.format(msgspec.json.encode(document)) + b"\n")
