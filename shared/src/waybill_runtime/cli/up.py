"""`waybill up`: the local stack in the foreground (what `make run` and `make demo` call)."""

from __future__ import annotations

import argparse
import asyncio
import math

import aiohttp

from waybill_runtime.cli.options import add_embedded_nats_options, embedded_nats_options
from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.demo import DemoEndpoints, DemoPlan, render_report, run_demo
from waybill_runtime.local.foreground import until_stopped
from waybill_runtime.local.stack import LocalStack
from waybill_runtime.local.trickle import trickle_orders


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"{text} is not 0 or more seconds")
    return seconds


def _order_count(text: str) -> int:
    count = _whole_number(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"{count} is too few: a demo needs at least one order")
    return count


def _demo_timeout(text: str) -> float:
    seconds = _seconds(text)
    if seconds == 0:
        raise argparse.ArgumentTypeError("0 seconds is too short: give the demo time to run")
    return seconds


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "up",
        help="start Waybill locally: embedded NATS, sandboxes, every service (Ctrl-C stops)",
        description=(
            "Start the local stack in the foreground: an embedded nats-server with JetStream "
            "(or --nats-url for an external one), the partner sandboxes and every installed "
            "service as its own process, with a trickle of demo orders. Ctrl-C or SIGTERM "
            "stops everything."
        ),
    )
    add_embedded_nats_options(parser)
    parser.add_argument(
        "--nats-url", default=None, help="use this NATS server instead of starting the embedded one"
    )
    parser.add_argument(
        "--order-every",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="create a demo order in the Odoo sandbox this often (0: none; default 5)",
    )
    demo = parser.add_argument_group("demo (finite run that checks its outcome)")
    demo.add_argument(
        "--demo", action="store_true", help="run the demo scenario, print a summary, stop"
    )
    demo.add_argument(
        "--orders", type=_order_count, default=50, help="demo orders, 1 or more (default 50)"
    )
    demo.add_argument(
        "--timeout",
        type=_demo_timeout,
        default=300.0,
        help="seconds the demo may take (default 300)",
    )
    parser.set_defaults(handler=run_up)


def run_up(args: argparse.Namespace) -> int:
    stack = LocalStack(embedded_nats_options(args), external_nats_url=args.nats_url)
    if args.demo:
        check_demo_possible(stack)
    with until_stopped() as stop:
        stack.start()
        try:
            _print_urls(stack)
            if args.demo:
                return _demo(stack, args)
            if stack.ports is not None and stack.with_sandboxes and args.order_every > 0:
                trickle_orders(f"http://127.0.0.1:{stack.ports.odoo}", args.order_every, stop)
            print("Waybill is up. Ctrl-C stops everything.", flush=True)
            while not stop.wait(0.5):
                dead = stack.dead_children()
                if dead:
                    print(f"waybill: error: {', '.join(dead)} stopped unexpectedly; see the logs")
                    return 1
        finally:
            stack.stop()
    return 0


def _print_urls(stack: LocalStack) -> None:
    """Where to look, aligned: NATS, each sandbox and service, the useful pages, the logs."""
    lines = {"NATS client URL": stack.nats_url}
    if stack.nats is not None:
        lines["NATS monitoring URL"] = stack.nats.monitor_url
    lines.update(stack.urls)
    auditor = stack.urls.get("service auditor")
    if auditor is not None:
        lines["orders by stage"] = f"{auditor}/orders  (stuck ones: /orders?stuck=true)"
    if stack.ports is not None and stack.with_sandboxes:
        odoo = f"http://127.0.0.1:{stack.ports.odoo}"
        lines["Odoo deliveries"] = f"{odoo}/_sandbox/odoo/pickings"
    lines["logs"] = str(stack.log_dir)
    width = max(len(name) for name in lines) + 2
    for name, value in lines.items():
        print(f"{name + ':':<{width}}{value}", flush=True)


DEMO_SERVICES = frozenset({"odoo-gateway", "orchestrator", "wms-bridge", "carrier-router"})


def check_demo_possible(stack: LocalStack) -> None:
    """Refuse the demo before anything starts when what it drives is not installed."""
    if not stack.with_sandboxes:
        raise UserFacingError(
            "the demo drives the partner sandboxes, which are not installed: "
            "pip install -e deploy/sandboxes (make demo does)"
        )
    missing = DEMO_SERVICES - set(stack.services)
    if missing:
        raise UserFacingError(
            f"the demo needs the services {', '.join(sorted(missing))}, which are not installed"
        )


def _demo(stack: LocalStack, args: argparse.Namespace) -> int:
    assert stack.ports is not None
    endpoints = DemoEndpoints(
        odoo=f"http://127.0.0.1:{stack.ports.odoo}",
        wms=f"http://127.0.0.1:{stack.ports.wms}",
        carrier_a=f"http://127.0.0.1:{stack.ports.carrier_a}",
        nats_url=stack.nats_url,
        mail=f"http://127.0.0.1:{stack.ports.mail_http}" if "notifier" in stack.services else None,
        auditor=(
            f"http://127.0.0.1:{stack.ports.services['auditor']}"
            if "auditor" in stack.services
            else None
        ),
    )
    plan = DemoPlan.for_orders(args.orders, timeout_s=args.timeout)
    print(f"demo: {plan.orders} orders, carrier A down for the first part of the run", flush=True)
    try:
        report = asyncio.run(run_demo(endpoints, plan))
    except (RuntimeError, OSError, aiohttp.ClientError) as error:
        print(f"demo: failed: {error}; see the logs in {stack.log_dir}", flush=True)
        return 1
    print(render_report(report), flush=True)
    complete = len(report.outcomes) == plan.orders and not report.unfinished
    return 0 if complete else 1
