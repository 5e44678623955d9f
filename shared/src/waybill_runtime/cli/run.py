"""`waybill run <service>`: one service, as it runs in a container."""

from __future__ import annotations

import argparse

from waybill_runtime.local.registry import installed_services, service_main


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    services = installed_services()
    parser = subcommands.add_parser(
        "run",
        help="run one service in the foreground, as it runs in a container",
        description=(
            "Run one Waybill service in the foreground. Its settings come from environment "
            "variables (NATS_URL, WAYBILL_*, OTEL_*); see the service's README. "
            f"Installed services: {', '.join(services) or 'none yet'}."
        ),
    )
    parser.add_argument("service", help="the service to run (`waybill services` lists them)")
    parser.set_defaults(handler=run_service)


def run_service(args: argparse.Namespace) -> int:
    return service_main(args.service)()
