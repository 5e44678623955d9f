"""The `waybill` command line.

Each command group lives in its own module in this package and exposes
``register(subcommands)``, which adds its parser and sets ``handler`` to a
function taking the parsed arguments and returning the exit code. Errors a
user can act on are raised as :class:`waybill_runtime.errors.UserFacingError`
and printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
    "ping",
    "token",
    "sandbox",
    "helm",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waybill",
        description="Waybill: the integration mesh for logistics companies and their partners.",
    )
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(f"waybill_runtime.cli.{name}").register(subcommands)
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
