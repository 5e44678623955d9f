"""``waybill odoo check``: the Odoo doctor at the command line.

Registered with the runtime's CLI through the ``waybill.commands`` entry
point (the runtime never imports a service). It reads the gateway's settings
from the environment (``WAYBILL_ODOO_*``, as ``waybill run odoo-gateway``
would), connects, and prints one line per item: what is fine, or what is
wrong and what to do, or (``WARN``) what could not be checked and how to
check it by hand. Exit 0 when all is well (warnings included), 1 when
something needs doing, 2 when Odoo cannot be reached or logged in to.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.odoo_errors import OdooLoginRejected, OdooUnavailable
from waybill_odoo_gateway.odoo_protocols import odoo_client_for
from waybill_odoo_gateway.odoo_setup import SetupReport, check_setup
from waybill_odoo_gateway.setup_findings import Finding
from waybill_runtime.settings import load_settings

__all__ = ["register", "run_check"]


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``waybill odoo check``."""
    odoo = subcommands.add_parser("odoo", help="Odoo, as the odoo-gateway sees it")
    commands = odoo.add_subparsers(title="commands", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="check Odoo's setup with the gateway's settings (WAYBILL_ODOO_*)",
        description=(
            "Connect to Odoo with the odoo-gateway's settings from the environment and say, "
            "per item, what is fine and what to do: version and protocol, the delivery "
            "module, the integration user's access rights, the API key's expiry, the "
            "automation rules sending deliveries to this gateway (Odoo 17+), SMS confirmation "
            "and auto-print. Exits 0 when all is well (WARN lines say what could not be "
            "checked), 1 when something needs doing, 2 when Odoo cannot be used at all."
        ),
    )
    check.set_defaults(handler=run_check)


async def _check(settings: OdooGatewaySettings) -> SetupReport:
    odoo = odoo_client_for(settings)
    try:
        await odoo.connect()
        return await check_setup(odoo, settings)
    finally:
        await odoo.close()


def _status(finding: Finding) -> str:
    if finding.warning:
        return "WARN"  # not checked: the line says how to check by hand
    return "ok  " if finding.ok else "FAIL"


def run_check(args: argparse.Namespace) -> int:
    """Run the check and print its findings; the exit code says how it went."""
    # A bad setting is a SettingsError: the CLI prints it as one line.
    settings = load_settings(OdooGatewaySettings, service="odoo-gateway")
    try:
        report = asyncio.run(_check(settings))
    except (OdooLoginRejected, OdooUnavailable) as cannot:
        print(f"FAIL odoo: {cannot}", file=sys.stdout)
        return 2
    for finding in report.findings:
        print(f"{_status(finding)} {finding.item}: {finding.line}")
    return 1 if report.problems else 0
