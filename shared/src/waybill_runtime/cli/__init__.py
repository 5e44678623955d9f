"""The `waybill` command line.

Each command group lives in its own module in this package and exposes
``register(subcommands)``; installed packages add theirs through the
``waybill.commands`` entry point group (a ``register`` function each: the
odoo-gateway's ``waybill odoo check``), so the runtime never imports a
service. Each ``register`` adds its parser and sets ``handler`` to a
function taking the parsed arguments and returning the exit code. Errors a
user can act on are raised as :class:`waybill_runtime.errors.UserFacingError`
and printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from waybill_runtime.errors import UserFacingError

# Command modules, in the order `waybill --help` lists them.
_COMMAND_MODULES = (
    "up",
    "run",
    "services",
    "new",
    "nats",
    "provision",
    "contracts",
    "dlq",
    "inventory",
    "sync",
    "ping",
    "token",
    "sandbox",
    "helm",
)


COMMANDS_GROUP = "waybill.commands"
"""Entry point group of commands that installed packages add (``register(subcommands)``)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waybill",
        description="Waybill: the integration mesh for logistics companies and their partners.",
    )
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(f"waybill_runtime.cli.{name}").register(subcommands)
    for plugin in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            plugin.load()(subcommands)
        except Exception as broken:  # one broken package must not take the CLI down
            print(
                f"waybill: warning: the command {plugin.name!r} of {plugin.value} could not be "
                f"loaded ({type(broken).__name__}: {broken}); reinstall its package",
                file=sys.stderr,
            )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except UserFacingError as error:
        print(f"waybill: error: {error}", file=sys.stderr)
        code = error.exit_code
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
