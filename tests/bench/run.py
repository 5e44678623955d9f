"""``python -m tests.bench``: one nats-server, each stage timed in interleaved rounds.

Rounds go raw, runtime, FastStream, raw, runtime, ... so that whatever else
the machine does at the time weighs on every stage alike; each stage's figure
is the median of its rounds and is reported as a ratio to raw nats-py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import importlib
import io
import pstats
import sys
import tempfile
import traceback
import uuid
from collections.abc import Callable, Coroutine, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import nats

from tests.bench.backlog import backlog_table, run_backlog
from tests.bench.burst import BurstFailed
from tests.bench.e2e import DEFAULT_BURSTS, e2e_table, run_bursts
from tests.bench.harness import (
    Command,
    RoundResult,
    Stage,
    StageFailed,
    delete_all_streams,
    run_round,
)
from tests.bench.machine import describe
from tests.bench.memory import HeapPeak
from tests.bench.report import BenchReport, StageFigures, table, write_json
from tests.bench.traffic import traffic_table

# key -> (module, class); imported only when the stage runs.
STAGES: dict[str, tuple[str, str]] = {
    "raw": ("tests.bench.stage_raw", "RawStage"),
    "runtime": ("tests.bench.stage_runtime", "RuntimeStage"),
    "faststream": ("tests.bench.stage_faststream", "FastStreamStage"),
    "raw-envelope": ("tests.bench.stage_raw_envelope", "RawEnvelopeStage"),
}
DEFAULT_STAGES = ["raw", "runtime", "faststream"]
BASELINE = "raw"

StageFactory = Callable[[str, str], Stage]


def _stage_list(text: str) -> list[str]:
    keys = [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in STAGES]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown stage(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(STAGES)}"
        )
    return keys


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small: use {minimum} or more")
        return value

    return parse


def _burst_list(text: str) -> list[int]:
    sizes = [_at_least(0)(part.strip()) for part in text.split(",") if part.strip()]
    if sizes == [0]:
        return []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("burst sizes are whole numbers of orders, 1 or more")
    return sorted(sizes)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Messages per second of the release-to-warehouse stage built with raw "
        "nats-py, on the Waybill runtime and on FastStream, side by side in one run.",
    )
    parser.add_argument(
        "--messages",
        type=_at_least(2),  # the rate is taken between the first and the last output
        default=20_000,
        help="messages per round (default 20000)",
    )
    parser.add_argument(
        "--rounds", type=_at_least(1), default=3, help="timed rounds per stage (default 3)"
    )
    parser.add_argument(
        "--warmup",
        type=_at_least(0),
        default=2_000,
        help="messages of an untimed first round per stage (default 2000, 0 for none)",
    )
    parser.add_argument(
        "--stages",
        type=_stage_list,
        default=DEFAULT_STAGES,
        help=f"comma-separated stages to run, in this order (default {','.join(DEFAULT_STAGES)}; "
        f"also: {', '.join(k for k in STAGES if k not in DEFAULT_STAGES)})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds a round may take before the run fails (default 300)",
    )
    parser.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="skip the extra, untimed round per stage that measures peak heap memory",
    )
    parser.add_argument(
        "--e2e-orders",
        type=_burst_list,
        default=list(DEFAULT_BURSTS),
        help="burst sizes of the end-to-end stage, comma-separated, smallest first "
        f"(default {','.join(map(str, DEFAULT_BURSTS))}; e.g. 100,300,1000; 0 skips the stage)",
    )
    parser.add_argument(
        "--e2e-traffic",
        action="store_true",
        help="count every message through nats-server during each burst, by what it is for "
        "(acks, pulls, KV reads and writes by bucket and key, publishes), per order; "
        "watching costs nats-server a delivery per message: take CPU figures from a run "
        "without it",
    )
    parser.add_argument(
        "--backlog-orders",
        type=_at_least(0),
        default=0,
        help="also measure the express lane behind a backlog inside the mesh: hold the "
        "carrier-router until N standard orders wait for labels, release an urgent order, "
        "resume it; reports the urgent label's rank and seconds (default 0: not run)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--profile",
        choices=list(STAGES),
        help="after the timed rounds, run one more round of this stage under cProfile "
        "and print where its time goes (not counted in the figures)",
    )
    parser.add_argument("--profile-out", type=Path, help="save the --profile statistics here")
    return parser.parse_args(argv)


def _factory(key: str) -> StageFactory:
    module_name, class_name = STAGES[key]
    factory: StageFactory = getattr(importlib.import_module(module_name), class_name)
    return factory


async def _one_round(
    nc: Any,
    factory: StageFactory,
    key: str,
    commands: Sequence[Command],
    timeout_s: float,
    meter: contextlib.AbstractContextManager[Any] | None = None,
) -> RoundResult:
    tag = f"{key[:2]}{uuid.uuid4().hex[:6]}"
    stage = factory(nc.connected_url.geturl(), tag)
    gc.collect()
    try:
        result = await run_round(nc, stage, commands, timeout_s=timeout_s, meter=meter)
    except StageFailed as error:
        raise StageFailed(f"{key}: {error}") from error
    except Exception as error:
        traceback.print_exc()
        raise StageFailed(f"{key}: {type(error).__name__}: {error}") from error
    finally:
        await delete_all_streams(nc.jetstream())
    return result


async def bench(nats_url: str, args: argparse.Namespace) -> list[StageFigures]:
    """The timed rounds, interleaved across stages; returns each stage's figures."""
    from tests.bench.workload import release_commands

    commands = release_commands(args.messages)
    factories = {key: _factory(key) for key in args.stages}
    names = {key: str(getattr(factory, "name", key)) for key, factory in factories.items()}
    rounds: dict[str, list[RoundResult]] = {key: [] for key in args.stages}
    nc = await nats.connect(nats_url, name="bench-harness")
    try:
        if args.warmup >= 2:
            warmup = commands[: args.warmup]
            for key, factory in factories.items():
                print(f"warm-up     {names[key]:<16} {len(warmup):>7,} msgs", flush=True)
                await _one_round(nc, factory, key, warmup, args.timeout)
        for round_number in range(1, args.rounds + 1):
            for key, factory in factories.items():
                result = await _one_round(nc, factory, key, commands, args.timeout)
                rounds[key].append(result)
                print(
                    f"round {round_number}/{args.rounds} {names[key]:<16} "
                    f"{len(commands):>7,} msgs {result.rate:>9,.0f} msgs/s "
                    f"{result.cpu_us_per_message:>7,.0f} µs CPU/msg",
                    flush=True,
                )
        heaps: dict[str, float] = {}
        if args.memory:
            for key, factory in factories.items():
                peak = HeapPeak()
                await _one_round(nc, factory, key, commands, args.timeout, peak)
                heaps[key] = peak.peak_mib
                print(
                    f"memory      {names[key]:<16} {len(commands):>7,} msgs "
                    f"{peak.peak_mib:>9,.1f} MiB peak heap (traced round, not timed)",
                    flush=True,
                )
        if args.profile:
            await _profile(
                nc,
                factories[args.profile] if args.profile in factories else _factory(args.profile),
                args,
                commands,
            )
    finally:
        await nc.close()
    return [
        StageFigures(
            key=key,
            name=names[key],
            rates=[r.rate for r in rounds[key]],
            cpu_us=[r.cpu_us_per_message for r in rounds[key]],
            wall_s=[r.wall_s for r in rounds[key]],
            peak_heap_mib=heaps.get(key),
        )
        for key in args.stages
    ]


async def _profile(
    nc: Any, factory: StageFactory, args: argparse.Namespace, commands: Sequence[Command]
) -> None:
    profiler = cProfile.Profile()
    result = await _one_round(nc, factory, str(args.profile), commands, args.timeout, profiler)
    print(f"\nprofile of {args.profile} ({result.rate:,.0f} msgs/s under cProfile, not counted):")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(25)
        print(out.getvalue())
    if args.profile_out is not None:
        profiler.dump_stats(args.profile_out)
        print(f"profile saved to {args.profile_out} (python -m pstats {args.profile_out})")


def _loop_runner() -> tuple[Callable[[Coroutine[Any, Any, Any]], Any], str]:
    # The runtime's services run on uvloop; every stage gets the same loop.
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run, "asyncio"
    return uvloop.run, f"uvloop {metadata.version('uvloop')}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every stage drained, 1 with one line on what failed."""
    args = parse_args(argv)
    from waybill_runtime.errors import UserFacingError
    from waybill_runtime.local.embedded_nats import (
        EmbeddedNats,
        EmbeddedNatsOptions,
        find_nats_server,
    )

    runner, loop_name = _loop_runner()
    with tempfile.TemporaryDirectory(prefix="waybill-bench-") as state_dir:
        server = EmbeddedNats(
            EmbeddedNatsOptions(
                port=0, monitor_port=0, state_dir=Path(state_dir), server_name="waybill-bench"
            )
        )
        try:
            server.start()
            print(f"nats-server {server.client_url} (store in {state_dir})", flush=True)
            figures = runner(bench(server.client_url, args))
        except UserFacingError as error:
            print(f"bench: {error}", file=sys.stderr)
            return 1
        except StageFailed as error:
            print(f"bench: a stage failed: {error}", file=sys.stderr)
            return 1
        finally:
            server.stop()
        machine = describe(find_nats_server(), loop_name)
    try:
        bursts = run_bursts(args.e2e_orders, runner, count_traffic=args.e2e_traffic)
        backlog = run_backlog(args.backlog_orders, runner) if args.backlog_orders else None
    except (BurstFailed, UserFacingError) as error:
        print(f"bench: the end-to-end stage failed: {error}", file=sys.stderr)
        return 1
    report = BenchReport(
        machine=machine,
        messages=args.messages,
        rounds=args.rounds,
        stages=figures,
        baseline=BASELINE,
        bursts=bursts,
        backlog=backlog,
    )
    print()
    print(table(report))
    if bursts:
        runtime = next((f for f in figures if f.key == "runtime"), None)
        print()
        print("end to end: the local stack, sandboxes in the benchmark profile, orders as a burst")
        print(e2e_table(bursts, runtime.median_cpu_us if runtime is not None else None))
        for burst in bursts:
            if burst.traffic:
                print()
                print(f"NATS messages per order, {burst.outcome.orders:,} orders, by purpose:")
                print(traffic_table(burst.traffic))
    if backlog is not None:
        print()
        print("the express lane behind a backlog in the mesh (carrier-router held, then resumed)")
        print(backlog_table(backlog))
    if args.json is not None:
        write_json(report, args.json)
        print(f"results written to {args.json}")
    return 0
