"""``waybill contracts``: export the contracts and check changes against the baseline.

Argument parsing and printing only; the work is done by
:mod:`waybill_contracts.governance` (the messages) and
:mod:`waybill_runtime.http.openapi` (each installed service's HTTP API).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec

from waybill_contracts import SubjectMap, governance
from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.registry import load_services

EXIT_BREAKING = 1


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``waybill contracts`` and its commands."""
    parser = subcommands.add_parser(
        "contracts",
        help="export the message contracts and check changes against the baseline",
        description="Export the message contracts (JSON Schema, AsyncAPI) and check that "
        "changes stay compatible with the committed baseline.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    export = commands.add_parser(
        "export",
        help="write a JSON Schema per message, one AsyncAPI 3.0 document and an OpenAPI "
        "3.1 document per service",
        description="Write DIR/schemas/<ce-type>.json for every message type, "
        "DIR/asyncapi.json describing every subject, and DIR/openapi/<service>.json for "
        "every installed service's HTTP API (what it serves at /openapi.json).",
    )
    export.add_argument("directory", metavar="DIR", type=Path, help="where to write the files")
    export.add_argument(
        "--prefix",
        default="waybill",
        help="subject prefix to describe (default: %(default)s)",
    )
    export.set_defaults(handler=_export)

    check = commands.add_parser(
        "check",
        help="fail, naming each breaking change, if the contracts break the baseline",
        description="Compare the contracts with the committed baseline. Exits 1 and names "
        "each breaking change (field removed, type changed, required field added, subject "
        "removed or renamed); additive changes pass.",
    )
    _baseline_option(check)
    check.set_defaults(handler=_check)

    snapshot = commands.add_parser(
        "snapshot",
        help="record the current contracts as the new baseline",
        description="Re-bless the baseline after an additive change. Refuses when the "
        "change is breaking unless --accept-breaking is given.",
    )
    _baseline_option(snapshot)
    snapshot.add_argument(
        "--accept-breaking",
        action="store_true",
        help="write the baseline even though the change breaks it (new major version only)",
    )
    snapshot.set_defaults(handler=_snapshot)


def _baseline_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline",
        type=Path,
        default=governance.BASELINE_PATH,
        metavar="PATH",
        help="baseline snapshot file (default: the one committed in waybill-contracts)",
    )


def _export(args: argparse.Namespace) -> int:
    try:
        subjects = SubjectMap(args.prefix)
    except ValueError as error:
        raise UserFacingError(f"{error}: pass a valid --prefix") from None
    directory: Path = args.directory
    services = load_services()
    try:
        written = governance.export(directory, subjects)
        (directory / "openapi").mkdir(exist_ok=True)
        for name, service in services.items():
            document = msgspec.json.format(msgspec.json.encode(service.openapi()), indent=2)
            (directory / "openapi" / f"{name}.json").write_bytes(document + b"\n")
    except OSError as error:
        raise UserFacingError(
            f"cannot write to {directory}: {error.strerror}; choose a writable directory"
        ) from None
    print(
        f"wrote {len(written) - 1} JSON Schemas, asyncapi.json and {len(services)} OpenAPI "
        f"documents (openapi/<service>.json) to {directory}"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    report = _compare(args.baseline)
    for line in report.breaking:
        print(f"breaking: {line}")
    if not report.compatible:
        print(
            f"{len(report.breaking)} breaking change(s) against {args.baseline}: keep the old "
            "field or subject, or add a new .v<major> message beside it"
        )
        return EXIT_BREAKING
    if report.additive:
        print(
            f"contracts are compatible; {len(report.additive)} additive change(s) not yet in "
            "the baseline: run `waybill contracts snapshot` to record them"
        )
        for line in report.additive:
            print(f"  additive: {line}")
    else:
        print("contracts are compatible with the baseline")
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    baseline: Path = args.baseline
    if baseline.exists() and not args.accept_breaking:
        report = _compare(baseline)
        if not report.compatible:
            for line in report.breaking:
                print(f"breaking: {line}")
            raise UserFacingError(
                f"not writing {baseline}: the contracts break it; fix the change, or pass "
                "--accept-breaking if this really starts a new major version",
                exit_code=EXIT_BREAKING,
            )
    try:
        governance.write_baseline(governance.take_snapshot(), baseline)
    except governance.BaselineError as error:
        raise UserFacingError(str(error)) from None
    print(f"baseline written to {baseline}")
    return 0


def _compare(baseline: Path) -> governance.CompatReport:
    try:
        return governance.check(baseline)
    except governance.BaselineError as error:
        raise UserFacingError(str(error)) from None
