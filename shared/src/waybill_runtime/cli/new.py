"""`waybill new service NAME`: scaffold a service in the repository it is run from.

The files come from :mod:`waybill_runtime.scaffold`'s templates; this module
only parses the command line and says what was made and what to do next.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from waybill_runtime.scaffold import DEFAULT_DESCRIPTION, scaffold_service


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "new",
        help="scaffold something new in this repository (a service)",
        description="Scaffold something new in the Waybill repository.",
    )
    kinds = parser.add_subparsers(title="what", metavar="WHAT", required=True)
    service = kinds.add_parser(
        "service",
        help="a new service: its package, README, a typed handler and a test",
        description=(
            "Create services/NAME (package waybill-NAME: settings, one typed handler of a "
            "contract event, the Service declaration, a README made from it) and "
            "tests/services/NAME with a test on a real nats-server, and register the package "
            "with mypy in the root pyproject.toml."
        ),
    )
    service.add_argument("name", metavar="NAME", help="the service's name, e.g. parcel-desk")
    service.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="the repository's root (default: the current directory)",
    )
    service.add_argument(
        "--description",
        default=DEFAULT_DESCRIPTION,
        help=f"what it does, one line (default: {DEFAULT_DESCRIPTION!r})",
    )
    service.set_defaults(handler=new_service)


def new_service(args: argparse.Namespace) -> int:
    root: Path = args.root
    done = scaffold_service(root, args.name, description=args.description)
    print(f"Created service {done.name} (package {done.package}) in {root.resolve()}:")
    for path in done.created:
        print(f"  created  {path}")
    for path in done.changed:
        print(f"  changed  {path} (mypy_path and the strict module list)")
    print(
        "\nNext steps:\n"
        "  make install             installs the new package (the Makefile finds services/*)\n"
        "  make lint test           ruff, mypy, the contract check, the tests (the new ones too)\n"
        f"  waybill services {done.name:<8} its declaration: what it consumes, publishes, owns\n"
        "  waybill up               starts it with the rest of the local stack\n"
        f"To publish events, add {done.name!r} to their publishers in the contracts first "
        "(docs/runtime.md, Adding a service)."
    )
    return 0
