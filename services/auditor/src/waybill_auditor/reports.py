"""Reports people download from the control tower: one document per run, as CSV or JSON.

CSV for a spreadsheet (a header row, then one row per line, CRLF as RFC 4180
has it), JSON for a script (the run's view as the page shows it). Each run's
report lives at ``.../<id>/report.csv`` and ``.../<id>/report.json``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence

import msgspec
from aiohttp import web

from waybill_runtime.http import ProblemError

__all__ = ["FORMATS", "csv_of", "report_response"]

FORMATS = ("csv", "json")


def csv_of(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``rows`` under a header of ``columns``; None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return out.getvalue()


def _file_name(name: str) -> str:
    """``name`` as a download's file name: only what every system takes in one."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def report_response(
    format_: str, name: str, document: msgspec.Struct, as_csv: Callable[[], str]
) -> web.Response:
    """The report as asked: ``document`` as JSON, or ``as_csv()`` as a CSV download."""
    if format_ not in FORMATS:
        raise ProblemError(
            404, "Not Found", f"no report as {format_!r}: ask for report.csv or report.json"
        )
    headers = {"Cache-Control": "no-store"}
    if format_ == "json":
        return web.Response(
            body=msgspec.json.encode(document), content_type="application/json", headers=headers
        )
    headers["Content-Disposition"] = f'attachment; filename="{_file_name(name)}.csv"'
    return web.Response(text=as_csv(), content_type="text/csv", charset="utf-8", headers=headers)
