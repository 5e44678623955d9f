"""``waybill sandbox odoo``: run the Odoo sandbox in the foreground for an integrator's scripts."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from waybill_sandboxes.cli import port, secret_default
from waybill_sandboxes.declarations import SECRET_ENV
from waybill_sandboxes.odoo.app import build_odoo_app
from waybill_sandboxes.odoo.sandbox import OdooSandbox, OdooSettings
from waybill_sandboxes.odoo.versions import SUPPORTED_VERSIONS
from waybill_sandboxes.server import run_forever


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: use 0 or more")
    return value


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``odoo`` subcommand to ``waybill sandbox``."""
    parser = subparsers.add_parser(
        "odoo",
        help="run a stand-in Odoo (JSON-RPC, XML-RPC, JSON-2) with demo orders",
        description=(
            "Run an in-memory Odoo 16-19 with customers, products and confirmed orders "
            "whose deliveries are ready. Prints its URL, database, users and API keys. "
            "Ctrl-C stops it; nothing is kept."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument(
        "--port", type=port, default=8069, help="TCP port (default 8069, 0 picks a free one)"
    )
    parser.add_argument(
        "--version",
        dest="odoo_version",
        type=int,
        choices=SUPPORTED_VERSIONS,
        default=17,
        help="Odoo major version to behave as (default 17)",
    )
    parser.add_argument("--db", default="waybill", help="database name (default waybill)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the demo data")
    parser.add_argument("--customers", type=_count, default=5, help="demo customers")
    parser.add_argument("--products", type=_count, default=8, help="demo products")
    parser.add_argument(
        "--orders", type=_count, default=3, help="confirmed demo orders, each with a ready delivery"
    )
    parser.add_argument(
        "--delivered-orders",
        type=_count,
        default=0,
        help="of the demo orders, how many are delivered and invoiced (ready to be returned)",
    )
    parser.add_argument(
        "--admin-password",
        default=secret_default("odoo.admin_password", None),
        help="the admin's password instead of 'admin' (with a fresh API key), "
        f"or ${SECRET_ENV['odoo.admin_password']}; then no credential is printed",
    )
    parser.add_argument(
        "--admin-api-key",
        default=secret_default("odoo.admin_api_key", None),
        help="the admin's API key (with --admin-password; default: a fresh one), "
        f"or ${SECRET_ENV['odoo.admin_api_key']}",
    )
    parser.add_argument(
        "--webhook-url",
        # A URL ending in the receiver's secret token: read from the environment first.
        default=secret_default("odoo.webhook_url", None),
        help="where automation-rule webhooks go (Odoo 17+): delivery ready, order cancelled "
        f"(or ${SECRET_ENV['odoo.webhook_url']})",
    )
    state_dir = os.environ.get("WAYBILL_STATE_DIR")
    parser.add_argument(
        "--counters-file",
        default=str(Path(state_dir) / "sandboxes" / "odoo-counters.json") if state_dir else None,
        metavar="PATH",
        help="keep record ids and references here, so a new run goes on after the last "
        "one's as a real database would (default: in $WAYBILL_STATE_DIR when `waybill up` "
        "runs the sandbox, else none: every run starts at 1)",
    )
    parser.set_defaults(handler=run_odoo_sandbox)


def run_odoo_sandbox(args: argparse.Namespace) -> int:
    """Build the sandbox from the parsed options and serve it until Ctrl-C."""
    settings = OdooSettings(
        version=args.odoo_version,
        db=args.db,
        seed=args.seed,
        customers=args.customers,
        products=args.products,
        orders=args.orders,
        delivered_orders=args.delivered_orders,
        webhook_url=args.webhook_url,
        admin_password=args.admin_password,
        admin_api_key=args.admin_api_key,
        counters_file=args.counters_file,
    )
    try:
        sandbox = OdooSandbox(settings)
    except ValueError as invalid:
        print(f"waybill sandbox odoo: error: {invalid}", file=sys.stderr)
        return 2
    try:
        # Credentials handed over in the environment are not printed: the banner may
        # end in a log file (`waybill up` writes one per process).
        from_environment = (
            bool(args.admin_password)
            and os.environ.get(SECRET_ENV["odoo.admin_password"]) == args.admin_password
        )
        banner = sandbox.banner(credentials=not from_environment)
        run_forever(build_odoo_app(sandbox), args.host, args.port, banner)
    except OSError as cannot_listen:
        print(f"waybill sandbox odoo: error: {cannot_listen.strerror}", file=sys.stderr)
        return 2
    return 0
