"""`waybill helm values`: write (or check) the chart files generated from the declarations.

Each service's chart under ``helm/`` follows its declaration: the `declared:`
block of its values, its values schema, its Chart.yaml; the umbrella chart's
`components:` block and schema follow all of them (:mod:`waybill_runtime.deploy`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from waybill_runtime.deploy.charts import chart_files, stale_chart_files, write_chart_files
from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.registry import load_services


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "helm",
        help="Helm charts: write the values and schemas generated from the declarations",
        description="Helm charts of the services (helm/): what follows from the declarations.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    values = commands.add_parser(
        "values",
        help="write each chart's generated values, schema and Chart.yaml",
        description=(
            "Write, for every installed service, the generated part of its chart under the "
            "helm folder (the declared: block of values.yaml, values.schema.json, Chart.yaml, "
            "its template) and the umbrella chart's components: block and schema. The "
            "hand-written part of each values.yaml (above the marker line) is kept."
        ),
    )
    values.add_argument(
        "--helm-dir", type=Path, default=Path("helm"), help="the charts' folder (default helm)"
    )
    values.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and name the files that differ from the declarations",
    )
    values.set_defaults(handler=run_values)


def run_values(args: argparse.Namespace) -> int:
    helm_dir: Path = args.helm_dir
    if not (helm_dir / "waybill-lib" / "Chart.yaml").is_file():
        raise UserFacingError(
            f"{helm_dir} has no waybill-lib chart: run this from the repository root or pass "
            "--helm-dir"
        )
    files = chart_files(load_services(), helm_dir)
    if args.check:
        stale = stale_chart_files(files, helm_dir)
        for path in stale:
            print(f"out of date: {helm_dir / path}")
        if stale:
            print("run `waybill helm values` and commit the result")
            return 1
        print(f"{len(files)} chart files match the declarations")
        return 0
    written = write_chart_files(files, helm_dir)
    for path in written:
        print(f"wrote {helm_dir / path}")
    print(f"{len(files)} chart files, {len(written)} written")
    return 0
