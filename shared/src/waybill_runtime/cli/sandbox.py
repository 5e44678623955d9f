"""`waybill sandbox`: run one partner sandbox (odoo, wms, carriers, mail) in the foreground.

The sandboxes are a separate distribution (deploy/sandboxes); this command
only forwards its arguments to them, so the runtime does not depend on them.
"""

from __future__ import annotations

import argparse

from waybill_runtime.errors import UserFacingError


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "sandbox",
        help="run a partner sandbox (odoo, wms, carriers, mail) for your own scripts",
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
        help="the sandbox name and its options, e.g. `wms --port 8070`",
    )
    parser.set_defaults(handler=run_sandbox)


def run_sandbox(args: argparse.Namespace) -> int:
    try:
        from waybill_sandboxes.cli import main
    except ImportError as missing:
        raise UserFacingError(
            f"the partner sandboxes are not installed ({missing}): "
            "run `pip install -e deploy/sandboxes` (or `make install`)"
        ) from missing
    code: int = main(list(args.arguments), prog="waybill sandbox")
    return code
