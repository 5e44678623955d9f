"""Reading what changed in Odoo since a watermark: keyset pages and forward-only watermarks.

Both the delivery poll and the product master sync ask Odoo for the records
written since the last time, oldest write first. Two things make that safe:

* **Pages by keyset, never by offset.** Each page starts after the last row of
  the one before, on ``(write_date, id)``: rows that leave the result while
  paging (a picking validated by a write-back) would shift an offset past rows
  never seen, and rows sharing one ``write_date`` (Odoo stamps the start of the
  transaction, to the second) are told apart by their id.
* **Watermarks that only move forward**, so replicas that read at once never
  move one back.

The overlap a reader subtracts from its watermark (``write_date`` is when the
transaction started, so a row can commit after rows stamped later) is the
reader's choice.
"""

from __future__ import annotations

from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import text

__all__ = ["Cursor", "advance_watermark", "page_written_after", "read_watermark"]

Cursor = tuple[str, int]
"""Where a page ends: the ``write_date`` and the id of its last row."""

ORDER = "write_date asc, id asc"


def _after(cursor: Cursor | None) -> list[object]:
    if cursor is None:
        return []
    written, record_id = cursor
    return [
        "|",
        ("write_date", ">", written),
        "&",
        ("write_date", "=", written),
        ("id", ">", record_id),
    ]


async def page_written_after(
    odoo: OdooClient,
    model: str,
    domain: list[object],
    fields: list[str],
    *,
    after: Cursor | None,
    size: int,
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """One page of ``model``'s rows matching ``domain`` after ``after``, oldest write first,
    and the cursor the next page starts after (None when this page was the last)."""
    rows: list[dict[str, Any]] = await odoo.call(
        model,
        "search_read",
        domain=domain + _after(after),
        fields=list(dict.fromkeys([*fields, "write_date"])),
        order=ORDER,
        limit=size,
    )
    if len(rows) < size:
        return rows, None
    return rows, (str(rows[-1]["write_date"]), int(rows[-1]["id"]))


async def read_watermark(marks: KeyValue, key: str) -> str | None:
    """The stored watermark (an Odoo datetime), None before the first full round."""
    try:
        entry = await marks.get(key)
    except KeyNotFoundError:
        return None
    return text((entry.value or b"").decode())


async def advance_watermark(marks: KeyValue, key: str, newest: str) -> None:
    """Move the watermark to ``newest`` unless it is already there or further."""
    for _attempt in range(3):
        try:
            entry = await marks.get(key)
        except KeyNotFoundError:
            try:
                await marks.create(key, newest.encode())
                return
            except KeyWrongLastSequenceError:
                continue
        current = text((entry.value or b"").decode())
        if current is not None and current >= newest:
            return
        try:
            await marks.update(key, newest.encode(), last=entry.revision)
            return
        except KeyWrongLastSequenceError:
            continue
