"""`waybill up`: the local stack in the foreground (what `make run` calls)."""

from __future__ import annotations

import argparse
import asyncio

from waybill_runtime.cli.options import add_embedded_nats_options, embedded_nats_options
from waybill_runtime.local.foreground import until_stopped
from waybill_runtime.local.smoke import jetstream_smoke_check
from waybill_runtime.local.stack import LocalStack


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "up",
        help="start Waybill locally: embedded NATS and every service (Ctrl-C stops)",
        description=(
            "Start the local stack in the foreground: an embedded nats-server with JetStream "
            "(or --nats-url for an external one) and every installed service as its own "
            "process. Ctrl-C or SIGTERM stops everything."
        ),
    )
    add_embedded_nats_options(parser)
    parser.add_argument(
        "--nats-url",
        default=None,
        help="use this NATS server instead of starting the embedded one",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="finite run: start the stack, run the demo checks, stop; exit 0 only if all pass",
    )
    parser.set_defaults(handler=run_up)


def run_up(args: argparse.Namespace) -> int:
    stack = LocalStack(embedded_nats_options(args), external_nats_url=args.nats_url)
    with until_stopped() as stop:
        stack.start()
        try:
            print(f"NATS client URL:     {stack.nats_url}", flush=True)
            if stack.nats is not None:
                print(f"NATS monitoring URL: {stack.nats.monitor_url}", flush=True)
            for name in stack.children:
                print(f"service {name:<16} log: {stack.log_dir / (name + '.log')}", flush=True)
            if not stack.children:
                print("services: none are installed yet", flush=True)
            if args.demo:
                return asyncio.run(jetstream_smoke_check(stack.nats_url))
            print("Waybill is up. Ctrl-C stops everything.", flush=True)
            while not stop.wait(0.5):
                dead = stack.dead_children()
                if dead:
                    print(f"waybill: error: {', '.join(dead)} stopped unexpectedly; see the logs")
                    return 1
        finally:
            stack.stop()
    return 0
