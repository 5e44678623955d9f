"""`waybill run [service]`: one service, as it runs in a container."""

from __future__ import annotations

import argparse
import os

from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.registry import installed_services, service_main
from waybill_runtime.settings import env_var_name

# The image names its service here (deploy/docker/Dockerfile), so its entry
# point is the same `waybill run` for every service.
SERVICE_VAR = env_var_name("service")


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
    parser.add_argument(
        "service",
        nargs="?",
        default=None,
        help=f"the service to run (default ${SERVICE_VAR}; `waybill services` lists them)",
    )
    parser.set_defaults(handler=run_service)


def run_service(args: argparse.Namespace) -> int:
    name = args.service or os.environ.get(SERVICE_VAR, "").strip()
    if not name:
        known = ", ".join(installed_services()) or "none are installed yet"
        raise UserFacingError(
            f"name the service to run: waybill run <service>, or set {SERVICE_VAR} "
            f"(the services are {known})"
        )
    return service_main(name)()
