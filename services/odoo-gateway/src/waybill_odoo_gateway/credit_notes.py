"""Credit notes for accepted returns, made in Odoo the way an accountant makes them.

The customer invoice of the sale order is reversed with the
``account.move.reversal`` wizard in its "partial refund" form, which leaves the
credit note in draft (16: ``refund_method="refund"`` + ``reverse_moves``; 17+:
``refund_moves``). Its lines copy the invoice's; they are then edited to the
accepted quantities only (lines of products not accepted are removed), and the
credit note is posted (``action_post``). Its amount is what Odoo computes from
the invoice's unit prices.

Once: the wizard's reason names the return (``Return RMA-7``), so the credit
note's ``ref`` is ``Reversal of: INV/2026/00001, Return RMA-7``. A second
request finds it: posted, it is answered as it is; still in draft (the last
attempt was cut off, or Odoo refused to post it), its lines are set again and
posting is tried again.

Odoo refusing to post (a locked period, a custom check) is
:class:`CreditNoteRefused`: permanent, naming the draft credit note a person
can fix before the request is retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_errors import OdooRefused
from waybill_odoo_gateway.odoo_values import decimal_quantity, many2one_id
from waybill_odoo_gateway.return_pickings import ReturnedLine, check_lines, with_skus
from waybill_runtime.outcomes import PermanentError

__all__ = [
    "CreditNote",
    "CreditNoteRefused",
    "CreditNoteRequest",
    "issue_credit_note",
    "posted_credit_note",
]

_MONEY = Decimal("0.01")


@dataclass(frozen=True)
class CreditNoteRequest:
    """Credit the accepted lines of a return (its RMA reference) against a sale order."""

    reference: str
    order: str
    """The sale order's name (``S00001``)."""
    lines: tuple[ReturnedLine, ...]
    """The accepted products and quantities."""


@dataclass(frozen=True)
class CreditNote:
    """The credit note in Odoo."""

    id: int
    name: str
    state: str
    amount_total: Decimal
    invoice: str
    """The customer invoice it reverses."""
    created: bool
    """False when an earlier request had made it."""


class CreditNoteRefused(OdooRefused):
    """Odoo refused to post the credit note; it stays in draft for a person to resolve."""

    def __init__(self, refused: OdooRefused, credit_note_id: int, invoice: str) -> None:
        super().__init__(refused.odoo_name or "UserError", refused.odoo_message)
        self.credit_note_id = credit_note_id
        self.invoice = invoice


def _reason(reference: str) -> str:
    return f"Return {reference}"


async def issue_credit_note(odoo: OdooClient, request: CreditNoteRequest) -> CreditNote:
    """The posted credit note of the return's accepted lines: found, or made by reversal."""
    check_lines(request.reference, request.lines, "credited")
    await odoo.connect()  # the version decides the wizard
    invoice = await _invoice(odoo, request)
    found = await _made_before(odoo, invoice, request.reference)
    created = found is None
    credit_note = found if found is not None else await _reverse(odoo, invoice, request)
    state = await _state(odoo, credit_note)
    if state == "posted":
        await _check_credited_as_asked(odoo, credit_note, request)
    if state == "draft":
        await _keep_accepted_lines(odoo, credit_note, request)
        try:
            await odoo.call("account.move", "action_post", [credit_note])
        except OdooRefused as refused:
            raise CreditNoteRefused(refused, credit_note, str(invoice["name"])) from refused
    return await _read(odoo, credit_note, str(invoice["name"]), created=created)


async def posted_credit_note(odoo: OdooClient, request: CreditNoteRequest) -> CreditNote | None:
    """The return's credit note if Odoo has it posted already (nothing is written)."""
    invoice = await _invoice(odoo, request)
    found = await _made_before(odoo, invoice, request.reference)
    if found is None:
        return None
    note = await _read(odoo, found, str(invoice["name"]), created=False)
    return note if note.state == "posted" else None


async def _read(odoo: OdooClient, credit_note: int, invoice: str, *, created: bool) -> CreditNote:
    [row] = await odoo.call(
        "account.move", "read", [credit_note], fields=["name", "state", "amount_total"]
    )
    return CreditNote(
        id=credit_note,
        name=str(row["name"]),
        state=str(row["state"]),
        amount_total=decimal_quantity(row["amount_total"]).quantize(_MONEY),
        invoice=invoice,
        created=created,
    )


async def _made_before(odoo: OdooClient, invoice: dict[str, Any], reference: str) -> int | None:
    """The credit note made for ``reference`` against ``invoice`` (found by its ``ref``)."""
    ref = f"Reversal of: {invoice['name']}, {_reason(reference)}"
    found = await odoo.call(
        "account.move",
        "search",
        domain=[
            ("move_type", "=", "out_refund"),
            ("reversed_entry_id", "=", invoice["id"]),
            ("ref", "=", ref),
            ("state", "!=", "cancel"),
        ],
        order="id",
        limit=1,
    )
    return int(found[0]) if found else None


async def _invoice(odoo: OdooClient, request: CreditNoteRequest) -> dict[str, Any]:
    """The order's latest posted customer invoice, with its lines' products and quantities."""
    orders = await odoo.call(
        "sale.order",
        "search_read",
        domain=[("name", "=", request.order)],
        fields=["invoice_ids"],
        limit=1,
    )
    if not orders:
        raise PermanentError(f"Odoo has no sale order {request.order!r}: nothing to credit")
    invoices = await odoo.call(
        "account.move",
        "search_read",
        domain=[
            ("id", "in", list(orders[0]["invoice_ids"])),
            ("move_type", "=", "out_invoice"),
            ("state", "=", "posted"),
        ],
        fields=["name", "journal_id", "invoice_line_ids"],
        order="id desc",
        limit=1,
    )
    if not invoices:
        raise PermanentError(
            f"sale order {request.order} has no posted customer invoice in Odoo: "
            f"return {request.reference} cannot be credited"
        )
    invoice = dict(invoices[0])
    invoiced = await _quantities(odoo, list(invoice["invoice_line_ids"]))
    for line in request.lines:
        billed = invoiced.get(line.sku, Decimal(0))
        if line.quantity > billed:
            raise PermanentError(
                f"return {request.reference}: {line.quantity} {line.sku} to credit, but "
                f"{invoice['name']} invoiced {billed}"
            )
    return invoice


async def _lines(odoo: OdooClient, line_ids: Sequence[int]) -> list[tuple[int, str, Decimal]]:
    """(line id, SKU, quantity) of invoice lines that have a product."""
    rows = await odoo.call(
        "account.move.line", "read", list(line_ids), fields=["product_id", "quantity"]
    )
    return [
        (int(row["id"]), sku, decimal_quantity(row["quantity"]))
        for sku, row in await with_skus(odoo, rows)
    ]


async def _quantities(odoo: OdooClient, line_ids: Sequence[int]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for _line, sku, quantity in await _lines(odoo, line_ids):
        totals[sku] = totals.get(sku, Decimal(0)) + quantity
    return totals


async def _reverse(odoo: OdooClient, invoice: dict[str, Any], request: CreditNoteRequest) -> int:
    values, method = odoo.dialect.reversal(
        {
            "move_ids": [(6, 0, [invoice["id"]])],
            "reason": _reason(request.reference),
            "journal_id": many2one_id(invoice["journal_id"]),
        }
    )
    context = {
        "active_model": "account.move",
        "active_ids": [invoice["id"]],
        "active_id": invoice["id"],
    }
    created = await odoo.call(
        "account.move.reversal", "create", vals_list=[values], context=context
    )
    wizard = created[0] if isinstance(created, list) else created
    await odoo.call("account.move.reversal", method, [wizard], context=context)
    [row] = await odoo.call("account.move.reversal", "read", [wizard], fields=["new_move_ids"])
    made = [int(i) for i in row["new_move_ids"]]
    if len(made) != 1:
        raise PermanentError(
            f"reversing {invoice['name']} made {len(made)} moves in Odoo, not one credit note"
        )
    return made[0]


async def _check_credited_as_asked(
    odoo: OdooClient, credit_note: int, request: CreditNoteRequest
) -> None:
    """A posted credit note cannot be edited: one that credits other quantities than asked
    (the return's accepted lines changed) is for a person to correct in Odoo."""
    [row] = await odoo.call("account.move", "read", [credit_note], fields=["invoice_line_ids"])
    credited = await _quantities(odoo, list(row["invoice_line_ids"]))
    asked = {line.sku: line.quantity.normalize() for line in request.lines}
    if credited != asked:
        raise PermanentError(
            f"return {request.reference} was credited already with {credited}; this request "
            f"asks {asked}: correct the credit note in Odoo"
        )


async def _state(odoo: OdooClient, credit_note: int) -> str:
    [row] = await odoo.call("account.move", "read", [credit_note], fields=["state"])
    return str(row["state"])


async def _keep_accepted_lines(
    odoo: OdooClient, credit_note: int, request: CreditNoteRequest
) -> None:
    """Set the draft credit note's lines to the accepted quantities; drop the rest."""
    [row] = await odoo.call("account.move", "read", [credit_note], fields=["invoice_line_ids"])
    left = {line.sku: line.quantity for line in request.lines}
    commands: list[Any] = []
    for line_id, sku, quantity in await _lines(odoo, list(row["invoice_line_ids"])):
        take = min(left.get(sku, Decimal(0)), quantity)
        if take <= 0:
            commands.append((2, line_id, 0))
            continue
        left[sku] -= take
        if take != quantity:
            commands.append((1, line_id, {"quantity": float(take)}))
    if commands:
        await odoo.call("account.move", "write", [credit_note], vals={"invoice_line_ids": commands})
