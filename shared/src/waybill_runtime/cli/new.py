"""`waybill new service NAME`: scaffold a service in the repository it is run from.

The files come from :mod:`waybill_runtime.scaffold`'s templates; this module
only parses the command line and says what was made and what to do next.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tomllib
from pathlib import Path
from typing import Any

from waybill_runtime.cli.options import subject_prefix_from_env
from waybill_runtime.deploy.charts import LIBRARY, chart_files, write_chart_files
from waybill_runtime.local.registry import load_services
from waybill_runtime.scaffold import DEFAULT_DESCRIPTION, scaffold_service
from waybill_runtime.security.nats_chart import mesh_values
from waybill_runtime.service import Service

# The NATS chart's users, generated from the declarations (docs/deploy.md, section 3).
NATS_ACCOUNTS = Path("deploy/nats/accounts.yaml")


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
    service = _service_from_sources(root / "services" / done.name, done.package)
    # In name order, as `load_services` gives them once the new one is installed.
    services = dict(sorted({**load_services(), done.name: service}.items()))
    for path in _write_chart(root, services):
        print(f"  wrote    {path} (its Helm chart; `waybill helm values`)")
    if _write_nats_accounts(root, services):
        print(f"  wrote    {NATS_ACCOUNTS} (its NATS user; `waybill nats permissions --helm`)")
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


def _service_from_sources(service_dir: Path, package: str) -> Service[Any]:
    """The new service's declaration, imported from its sources (it is not installed yet).

    Uninstalled, it knows no version of its own: it gets the one its pyproject
    gives, which installing it will report.
    """
    src = service_dir / "src"
    sys.path.insert(0, str(src))
    try:
        service: Service[Any] = importlib.import_module(f"{package}.app").service
    finally:
        sys.path.remove(str(src))
    project = tomllib.loads((service_dir / "pyproject.toml").read_text(encoding="utf-8"))
    service.version = str(project["project"]["version"])
    return service


def _write_chart(root: Path, services: dict[str, Service[Any]]) -> list[Path]:
    """Its chart under helm/ and its entry in the umbrella chart, as `waybill helm values` does."""
    helm_dir = root / "helm"
    if not (helm_dir / LIBRARY / "Chart.yaml").is_file():
        return []
    files = chart_files(services, helm_dir)
    return [(helm_dir / path).relative_to(root) for path in write_chart_files(files, helm_dir)]


def _write_nats_accounts(root: Path, services: dict[str, Service[Any]]) -> bool:
    """The NATS chart's users with the new one, so a cluster admits it (deploy/nats)."""
    target = root / NATS_ACCOUNTS
    if not target.is_file():
        return False
    target.write_text(mesh_values(services.values(), subject_prefix_from_env()), encoding="utf-8")
    return True
