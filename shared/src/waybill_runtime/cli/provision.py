"""`waybill provision`: create the streams, buckets and durables of the installed services.

The provisioning step of a secured mesh: it runs as the admin identity, so
services need no stream-admin rights and run with WAYBILL_PROVISION=never.
What it creates, and how, comes from the declarations and the WAYBILL_*
settings every service reads (retention, replicas, max_ack_pending, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from waybill_runtime.bus.provisioning import provision_mesh
from waybill_runtime.cli.identity import add_identity_options, connected_identity
from waybill_runtime.cli.options import add_nats_url_option
from waybill_runtime.local.registry import load_services
from waybill_runtime.security.permissions import ADMIN
from waybill_runtime.settings import RuntimeSettings, env_var_name, load_settings


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "provision",
        help="create the streams, KV buckets and durable consumers the services need (as admin)",
        description=(
            "Create or check, as the admin identity, the streams, KV buckets and durable "
            "consumers of every installed service (or of the ones named), so the services "
            "can run without stream-admin rights (WAYBILL_PROVISION=never). Retention, "
            "replicas and consumer limits come from the WAYBILL_* settings; each service's "
            "durables keep its own consumer limits unless they are set."
        ),
    )
    parser.add_argument("names", nargs="*", metavar="SERVICE", help="only these services")
    add_nats_url_option(parser)
    add_identity_options(parser, ADMIN)
    parser.set_defaults(handler=run_provision)


def runtime_settings() -> RuntimeSettings:
    """The settings every service shares, from the environment (a service's own are ignored)."""
    shared = {f: env_var_name(f) for f in RuntimeSettings.__struct_fields__}
    environ = {var: os.environ[var] for var in shared.values() if var in os.environ}
    return load_settings(RuntimeSettings, environ=environ, service=ADMIN)


def run_provision(args: argparse.Namespace) -> int:
    services = load_services(list(args.names) or None)
    settings = runtime_settings()
    declarations = [s.describe(subject_prefix=settings.subject_prefix) for s in services.values()]

    async def provisioning() -> None:
        async with connected_identity(args, args.nats_url) as nc:
            await provision_mesh(nc.jetstream(), declarations, settings, environ=os.environ)

    asyncio.run(provisioning())
    print(
        f"provisioned {len(declarations)} service(s) under prefix {settings.subject_prefix}: "
        + ", ".join(d.name for d in declarations)
    )
    return 0
