"""``IssueCreditNoteInOdoo``: the credit note of a return's accepted lines, posted once; then
``CreditNoteIssued``, or ``CreditNoteRefused`` when Odoo refuses to post it.

A refusal (a locked period, a custom check) is a business outcome, not a dead
letter: the orchestrator raises it for a person and, once resolved, sends the
command again under the next ``attempt``. Each attempt is acted on once (a
redelivered refused attempt is answered with its refusal again, not posted):
the attempt is part of the once-only key. Every attempt works on the same
credit note, found again by its reference, so a later attempt posts the draft
the refused one left.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from waybill_contracts import fact_id
from waybill_contracts.events import CreditNoteIssued, CreditNoteRefused
from waybill_contracts.model import Money
from waybill_contracts.return_commands import IssueCreditNoteInOdoo
from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_odoo_gateway.credit_notes import (
    CreditNote,
    CreditNoteRequest,
    issue_credit_note,
    posted_credit_note,
)
from waybill_odoo_gateway.credit_notes import CreditNoteRefused as OdooRefusedCreditNote
from waybill_odoo_gateway.gateway import Gateway
from waybill_odoo_gateway.odoo_values import many2one_id
from waybill_odoo_gateway.return_pickings import ReturnedLine
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.outcomes import PermanentError

__all__ = ["CreditAttempt", "issue_credit_note_in_odoo"]


class CreditAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt came to, as kept in the idempotency bucket."""

    credit_note_id: int
    name: str | None = None
    amount: str | None = None
    refused: str | None = None
    """Odoo's reason when it refused to post the credit note."""


async def _sale_order_name(gateway: Gateway, command: IssueCreditNoteInOdoo) -> str:
    """The sale order whose invoice is reversed: the command's, else the delivery's."""
    sale_order_id = command.odoo_sale_order_id
    if sale_order_id is None:
        deliveries = await gateway.odoo.call(
            "stock.picking",
            "search_read",
            domain=[("name", "=", command.order_ref), ("picking_type_code", "=", "outgoing")],
            fields=["sale_id"],
            limit=1,
        )
        sale_order_id = many2one_id(deliveries[0]["sale_id"]) if deliveries else None
    if sale_order_id is None:
        raise PermanentError(
            f"return {command.return_id}: order {command.order_ref} has no sale order in Odoo "
            "to credit"
        )
    found = await gateway.odoo.call(
        "sale.order", "search_read", domain=[("id", "=", sale_order_id)], fields=["name"]
    )
    if not found:
        raise PermanentError(f"return {command.return_id}: Odoo has no sale order {sale_order_id}")
    return str(found[0]["name"])


def _accepted(command: IssueCreditNoteInOdoo) -> tuple[ReturnedLine, ...]:
    """The credited quantities per SKU (two lines of one product credited together)."""
    totals: dict[str, Decimal] = {}
    for line in command.lines:
        totals[line.sku] = totals.get(line.sku, Decimal(0)) + line.quantity.value
    return tuple(ReturnedLine(sku=sku, quantity=quantity) for sku, quantity in totals.items())


def _issued(note: CreditNote) -> CreditAttempt:
    return CreditAttempt(credit_note_id=note.id, name=note.name, amount=str(note.amount_total))


async def issue_credit_note_in_odoo(
    gateway: Gateway, command: IssueCreditNoteInOdoo, ctx: HandlerContext[OdooGatewaySettings]
) -> None:
    """Handle :class:`IssueCreditNoteInOdoo`; publish what Odoo made of this attempt."""
    request = CreditNoteRequest(
        reference=command.return_id,
        order=await _sale_order_name(gateway, command),
        lines=_accepted(command),
    )

    async def issue() -> CreditAttempt:
        try:
            return _issued(await issue_credit_note(gateway.odoo, request))
        except OdooRefusedCreditNote as refused:
            return CreditAttempt(
                credit_note_id=refused.credit_note_id,
                refused=refused.odoo_message or str(refused),
            )

    async def posted() -> CreditAttempt | None:
        note = await posted_credit_note(gateway.odoo, request)
        return _issued(note) if note is not None else None

    async with gateway.returns.hold(command.return_id):
        outcome = await ctx.runtime.once_only(CreditAttempt).run(
            f"odoo:return:{command.return_id}:credit_note:{command.attempt}",
            issue,
            recover=posted,
        )
    now = datetime.now(UTC)
    if outcome.refused is not None:
        refusal = CreditNoteRefused(
            return_id=command.return_id,
            order_ref=command.order_ref,
            reason=outcome.refused,
            refused_at=now,
        )
        await ctx.publish(
            refusal,
            fact_id=fact_id(
                "odoo",
                "account.move",
                outcome.credit_note_id,
                "credit_note_refused",
                command.attempt,
            ),
        )
        return
    issued = CreditNoteIssued(
        return_id=command.return_id,
        order_ref=command.order_ref,
        odoo_credit_note_id=outcome.credit_note_id,
        credit_note_ref=outcome.name or str(outcome.credit_note_id),
        amount=Money(
            amount=Decimal(outcome.amount or "0"), currency=gateway.settings.odoo_currency
        ),
        issued_at=now,
    )
    await ctx.publish(
        issued,
        fact_id=fact_id("odoo", "account.move", outcome.credit_note_id, "credit_note_issued"),
    )
