"""`waybill services`: the installed services' declarations, as a table or as JSON.

What each service consumes, publishes, sends, owns and exposes, read from the
declarations themselves (see :mod:`waybill_runtime.declaration`), so people
and tools (permissions, charts) see the mesh as it is.
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from waybill_contracts import Lane
from waybill_runtime.declaration import Declaration
from waybill_runtime.local.registry import load_services


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "services",
        help="list the installed services: what each consumes, publishes, owns and exposes",
        description=(
            "Print the declaration of every installed service (or of the ones named): the "
            "messages it consumes, publishes and sends, its buckets, partners, HTTP routes, "
            "ports and settings."
        ),
    )
    parser.add_argument("names", nargs="*", metavar="SERVICE", help="only these services")
    parser.add_argument("--json", action="store_true", help="print JSON, for tools")
    parser.add_argument(
        "--subject-prefix",
        default="waybill",
        help="subject prefix the subjects are shown under (default waybill)",
    )
    parser.set_defaults(handler=list_services)


def list_services(args: argparse.Namespace) -> int:
    services = load_services(list(args.names) or None)
    declarations = [
        service.describe(subject_prefix=args.subject_prefix) for service in services.values()
    ]
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(declarations)).decode() + "\n")
    else:
        sys.stdout.write(render(declarations))
    return 0


def _short(ce_type: str) -> str:
    # io.waybill.order.released.v1 -> order.released.v1; the namespace is the same for all.
    return ce_type.removeprefix("io.waybill.")


def render(declarations: list[Declaration]) -> str:
    """One block per service, one line per kind of thing it declares."""
    lines: list[str] = []
    for d in declarations:
        lines.append(f"{d.name} {d.version}: {d.description}")
        rows = {
            "consumes": ", ".join(_short(c.type) for c in d.consumes if c.lane is Lane.STANDARD)
            + (" + every dead letter" if d.consumes_dead_letters else ""),
            "publishes": ", ".join(_short(p.type) for p in d.publishes),
            "sends": ", ".join(_short(p.type) for p in d.sends),
            "queries": ", ".join(d.queries),
            "buckets": ", ".join(
                b.bucket + ("" if b.ttl_s is None else f" (ttl {b.ttl_s:g} s)") for b in d.buckets
            ),
            "partners": ", ".join(p.name for p in d.partners),
            "routes": ", ".join(f"{r.method} {r.path}" for r in d.routes),
            "ports": ", ".join(f"{name} {port}" for name, port in d.ports.items()),
            "secrets": ", ".join(d.secrets),
        }
        for label, text in rows.items():
            lines.append(f"  {label + ':':<11}{text or '-'}")
        lines.append("")
    return "\n".join(lines)
