"""`waybill sandbox`: run one partner sandbox in the foreground.

The sandboxes are a separate distribution (deploy/sandboxes) that registers
its command line in the ``waybill.sandbox_cli`` entry-point group; this
command only forwards its arguments there, so the runtime depends on none.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib.metadata import entry_points

from waybill_runtime.errors import UserFacingError

SANDBOX_CLI_GROUP = "waybill.sandbox_cli"


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "sandbox",
        help="run a partner sandbox for your own scripts (`waybill sandbox --help` lists them)",
        description=(
            "Run one stand-in partner system in the foreground and print its URL and "
            "credentials. `waybill sandbox --help` lists the sandboxes and their options."
        ),
        # Every argument, --help included, belongs to the sandboxes' own parser, which
        # knows their options: with no option prefix of its own, this parser takes
        # "--help" or "--port" as plain words to forward.
        add_help=False,
        prefix_chars="+",
    )
    parser.add_argument(
        "arguments",
        nargs=argparse.REMAINDER,
        help="the sandbox name and its options, e.g. `NAME --port 8070`",
    )
    parser.set_defaults(handler=run_sandbox)


def run_sandbox(args: argparse.Namespace) -> int:
    for ep in entry_points(group=SANDBOX_CLI_GROUP):
        main: Callable[..., int] = ep.load()
        return main(list(args.arguments), prog="waybill sandbox")
    raise UserFacingError(
        "the partner sandboxes are not installed: "
        "run `pip install -e deploy/sandboxes` (or `make install`)"
    )
