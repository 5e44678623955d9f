"""`waybill nats`: the embedded nats-server alone, in the foreground."""

from __future__ import annotations

import argparse

from waybill_runtime.cli.options import add_embedded_nats_options, embedded_nats_options
from waybill_runtime.local.embedded_nats import EmbeddedNats
from waybill_runtime.local.foreground import until_stopped


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "nats",
        help="run the embedded nats-server (JetStream) alone",
        description=(
            "Run the embedded nats-server with JetStream in the foreground and print its "
            "client and monitoring URLs. Ctrl-C or SIGTERM stops it."
        ),
    )
    add_embedded_nats_options(parser)
    parser.set_defaults(handler=run_nats)


def run_nats(args: argparse.Namespace) -> int:
    server = EmbeddedNats(embedded_nats_options(args))
    with until_stopped() as stop:
        server.start()
        try:
            print(f"NATS client URL:     {server.client_url}", flush=True)
            print(f"NATS monitoring URL: {server.monitor_url}", flush=True)
            print(f"JetStream store:     {server.state_dir / 'nats' / 'jetstream'}", flush=True)
            while not stop.wait(0.5):
                if not server.running():
                    print(
                        f"waybill: error: nats-server stopped unexpectedly; see {server.log_path}"
                    )
                    return 1
        finally:
            server.stop()
    return 0
