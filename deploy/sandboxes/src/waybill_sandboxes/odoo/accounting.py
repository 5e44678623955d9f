"""Customer invoices and credit notes, as the account app makes them (16.0-19.0).

addons/account/models/account_move.py and addons/account/wizard/account_move_reversal.py,
without taxes (a line's subtotal is quantity x unit price; the totals add them up):

- A customer invoice is an ``account.move`` of ``move_type`` ``out_invoice`` in the
  sales journal, a credit note one of ``out_refund``. Drafts are named ``/``;
  ``action_post`` names them from the journal's sequence (``INV/2026/00001``,
  credit notes ``RINV/2026/00001`` with the journal's dedicated refund sequence)
  and refuses a move without lines or partner, and a negative total.
- A credit note is made by reversal: ``account.move.reversal`` on posted moves
  (``move_ids``), ``reason``, ``journal_id`` (required from 17.0). 16.0 picks a
  ``refund_method`` and calls ``reverse_moves()``: ``refund`` leaves the credit
  note in draft to be edited, ``cancel`` posts it and marks the invoice reversed,
  ``modify`` does the same and adds a new draft invoice. 17.0+ call
  ``refund_moves()`` (draft credit note), ``modify_moves()``, or
  ``reverse_moves(is_modify=...)``. The credit note's ``ref`` is
  ``Reversal of: INV/2026/00001, <reason>`` and ``reversed_entry_id`` the invoice;
  its lines copy the invoice's (with their sale order lines).
- The sandbox invoices delivered quantities on request
  (:func:`invoice_delivered`), as a salesperson's "Create Invoice" does under
  the "delivered quantities" policy.
"""

from __future__ import annotations

from typing import Any

from waybill_sandboxes.odoo.env import Records, add_xmlid, xmlid_to_record
from waybill_sandboxes.odoo.exceptions import UserError
from waybill_sandboxes.odoo.registry import RecordChange, Registry

__all__ = [
    "action_post",
    "install_accounting",
    "invoice_delivered",
    "modify_moves",
    "refund_moves",
    "reverse_moves_16",
    "reverse_moves_17",
]

_MOVE = "account.move"
_LINE = "account.move.line"
_WIZARD = "account.move.reversal"
_ROUNDING = 1e-6


def install_accounting(registry: Registry) -> None:
    """The sales journal, and totals that follow the lines as Odoo's computes do."""
    [journal] = registry.create(
        "account.journal",
        [{"name": "Customer Invoices", "code": "INV", "type": "sale", "refund_sequence": True}],
        uid=1,
    )
    add_xmlid(registry, "account.1_sale", "account.journal", journal)

    def recompute(change: RecordChange) -> None:
        if change.model == _LINE and registry.exists(_LINE, [change.record_id]):
            line = change.record_id
            subtotal = float(registry.value(_LINE, line, "quantity") or 0.0) * float(
                registry.value(_LINE, line, "price_unit") or 0.0
            )
            registry.store(_LINE, line, {"price_subtotal": round(subtotal, 2)})
            move = registry.value(_LINE, line, "move_id")
            if move:
                _recompute_totals(registry, move)
        elif change.model == _MOVE:  # lines dropped from it (unlinks send no change)
            _recompute_totals(registry, change.record_id)

    registry.listeners.append(recompute)


def _recompute_totals(registry: Registry, move: int) -> None:
    if not registry.exists(_MOVE, [move]):
        return
    total = round(
        sum(
            float(registry.value(_LINE, line, "price_subtotal") or 0.0)
            for line in registry.value(_MOVE, move, "invoice_line_ids")
        ),
        2,
    )
    paid = registry.value(_MOVE, move, "payment_state") in ("paid", "reversed")
    registry.store(
        _MOVE,
        move,
        {
            "amount_untaxed": total,
            "amount_tax": 0.0,
            "amount_total": total,
            "amount_residual": 0.0 if paid else total,
        },
    )


def _sales_journal(registry: Registry) -> int:
    return xmlid_to_record(registry, "account.1_sale")[1]


def invoice_delivered(registry: Registry, order_id: int, uid: int) -> int | None:
    """Invoice what was delivered and not invoiced yet, and post it; the invoice's id,
    None when there is nothing to invoice ("Create Invoice", delivered quantities)."""
    lines: list[Any] = []
    for sale_line in registry.value("sale.order", order_id, "order_line"):
        product = registry.value("sale.order.line", sale_line, "product_id")
        to_invoice = float(
            registry.value("sale.order.line", sale_line, "qty_delivered")
        ) - _invoiced(registry, sale_line)
        if not product or to_invoice <= _ROUNDING:
            continue
        lines.append(
            (0, 0, {
                "product_id": product,
                "name": registry.value("sale.order.line", sale_line, "name") or False,
                "quantity": to_invoice,
                "price_unit": registry.value("sale.order.line", sale_line, "price_unit"),
                "sale_line_ids": [(6, 0, [sale_line])],
            })
        )  # fmt: skip
    if not lines:
        return None
    [invoice] = registry.create(
        _MOVE,
        [{
            "move_type": "out_invoice",
            "partner_id": registry.value("sale.order", order_id, "partner_invoice_id")
            or registry.value("sale.order", order_id, "partner_id"),
            "journal_id": _sales_journal(registry),
            "invoice_origin": registry.value("sale.order", order_id, "name"),
            "ref": registry.value("sale.order", order_id, "client_order_ref") or False,
            "invoice_line_ids": lines,
        }],
        uid,
    )  # fmt: skip
    _post(registry, invoice, uid)
    known = list(registry.value("sale.order", order_id, "invoice_ids"))
    registry.store("sale.order", order_id, {"invoice_ids": [*known, invoice]})
    return invoice


def _invoiced(registry: Registry, sale_line: int) -> float:
    """``qty_invoiced``: posted invoice lines count, posted credit note lines take back."""
    total = 0.0
    for line in registry.search(_LINE, [("sale_line_ids", "in", [sale_line])]):
        move = registry.value(_LINE, line, "move_id")
        if registry.value(_MOVE, move, "state") != "posted":
            continue
        sign = -1.0 if registry.value(_MOVE, move, "move_type") == "out_refund" else 1.0
        total += sign * float(registry.value(_LINE, line, "quantity") or 0.0)
    return total


# ------------------------------------------------------------------ action_post
def action_post(self: Records) -> bool:
    """``account.move.action_post``: name and post draft moves. Returns False, as Odoo does."""
    registry, uid = self.env.registry, self.env.uid
    registry.ensure_exist(self.model, list(self.ids), uid)
    for move in self.ids:
        _post(registry, move, uid)
    return False


def _post(registry: Registry, move: int, uid: int) -> None:
    state = registry.value(_MOVE, move, "state")
    if state == "posted":
        raise UserError(f"The entry {registry.value(_MOVE, move, 'name')} is already posted.")
    if state == "cancel":
        raise UserError("You can't post a cancelled entry.")
    kind = registry.value(_MOVE, move, "move_type")
    label = "Customer Credit Note" if kind == "out_refund" else "Customer Invoice"
    if not registry.value(_MOVE, move, "partner_id"):
        raise UserError(
            f"The field 'Customer' is required, please complete it to validate the {label}."
        )
    if not registry.value(_MOVE, move, "invoice_line_ids"):
        raise UserError("You need to add a line before posting.")
    if float(registry.value(_MOVE, move, "amount_total") or 0.0) < -_ROUNDING:
        raise UserError(
            "You cannot validate an invoice with a negative total amount. You should create "
            "a credit note instead. Use the action menu to transform it into a credit note "
            "or refund."
        )
    today = registry.today()
    prefix = "RINV" if kind == "out_refund" else "INV"
    year = today[:4]
    number = registry.next_sequence(f"account.move.{prefix}.{year}")
    values: dict[str, Any] = {
        "state": "posted",
        "name": f"{prefix}/{year}/{number:05d}",
        "date": registry.value(_MOVE, move, "date") or today,
        "invoice_date": registry.value(_MOVE, move, "invoice_date") or today,
    }
    registry.write(_MOVE, [move], values, uid)


# ----------------------------------------------------------- account.move.reversal
def reverse_moves_16(self: Records) -> dict[str, Any]:
    """16.0 ``reverse_moves()``: by the wizard's ``refund_method``."""
    wizard = self.ensure_one()
    method = self.env.registry.value(_WIZARD, wizard, "refund_method") or "refund"
    return _reverse(self, post=method in ("cancel", "modify"), new_draft=method == "modify")


def reverse_moves_17(self: Records, is_modify: bool = False) -> dict[str, Any]:
    """17.0+ ``reverse_moves(is_modify=False)``: a draft credit note, or with ``is_modify``
    a posted one and a new draft invoice."""
    self.ensure_one()
    return _reverse(self, post=bool(is_modify), new_draft=bool(is_modify))


def refund_moves(self: Records) -> dict[str, Any]:
    """17.0+ ``refund_moves()``: ``reverse_moves(is_modify=False)``."""
    return reverse_moves_17(self, is_modify=False)


def modify_moves(self: Records) -> dict[str, Any]:
    """17.0+ ``modify_moves()``: ``reverse_moves(is_modify=True)``."""
    return reverse_moves_17(self, is_modify=True)


def _reverse(self: Records, *, post: bool, new_draft: bool) -> dict[str, Any]:
    registry, uid = self.env.registry, self.env.uid
    registry.ensure_exist(self.model, list(self.ids), uid)
    wizard = self.ids[0]
    moves = list(registry.value(_WIZARD, wizard, "move_ids"))
    if not moves:
        raise UserError("You need to select at least one journal entry to reverse.")
    for move in moves:
        if registry.value(_MOVE, move, "state") != "posted":
            raise UserError("You can only reverse posted moves.")
    reason = registry.value(_WIZARD, wizard, "reason")
    created: list[int] = []
    for move in moves:
        credit_note = _reversal_of(registry, wizard, move, reason or "", uid)
        created.append(credit_note)
        if post:
            _post(registry, credit_note, uid)
            registry.write(_MOVE, [move], {"payment_state": "reversed"}, uid)
            _recompute_totals(registry, move)
        if new_draft:
            created.append(_draft_copy(registry, move, uid))
    registry.write(_WIZARD, [wizard], {"new_move_ids": [(6, 0, created)]}, uid)
    # _get_reversal_redirect_action: the form of a single new move, else a list of them.
    action: dict[str, Any] = {
        "name": "Reverse Moves",
        "type": "ir.actions.act_window",
        "res_model": _MOVE,
    }
    kinds = {registry.value(_MOVE, move, "move_type") for move in created}
    if len(kinds) == 1:
        action["context"] = {"default_move_type": kinds.pop()}
    if len(created) == 1:
        action.update({"view_mode": "form", "res_id": created[0]})
    else:
        listing = "list,form" if registry.version.major >= 18 else "tree,form"
        action.update({"view_mode": listing, "domain": [["id", "in", created]]})
    return action


def _copied_lines(registry: Registry, move: int) -> list[Any]:
    rows = registry.read(
        _LINE,
        list(registry.value(_MOVE, move, "invoice_line_ids")),
        ["product_id", "name", "quantity", "price_unit", "sale_line_ids"],
        load=None,
    )
    return [
        (0, 0, {
            "product_id": row["product_id"],
            "name": row["name"],
            "quantity": row["quantity"],
            "price_unit": row["price_unit"],
            "sale_line_ids": [(6, 0, list(row["sale_line_ids"]))],
        })
        for row in rows
    ]  # fmt: skip


def _reversal_of(registry: Registry, wizard: int, move: int, reason: str, uid: int) -> int:
    name = registry.value(_MOVE, move, "name")
    reversed_type = {"out_invoice": "out_refund", "out_refund": "out_invoice"}.get(
        registry.value(_MOVE, move, "move_type"), "entry"
    )
    [credit_note] = registry.create(
        _MOVE,
        [{
            "move_type": reversed_type,
            "partner_id": registry.value(_MOVE, move, "partner_id"),
            "journal_id": registry.value(_WIZARD, wizard, "journal_id")
            or registry.value(_MOVE, move, "journal_id"),
            "ref": f"Reversal of: {name}, {reason}" if reason else f"Reversal of: {name}",
            "date": registry.value(_WIZARD, wizard, "date") or registry.today(),
            "invoice_origin": registry.value(_MOVE, move, "invoice_origin"),
            "reversed_entry_id": move,
            "invoice_line_ids": _copied_lines(registry, move),
        }],
        uid,
    )  # fmt: skip
    return credit_note


def _draft_copy(registry: Registry, move: int, uid: int) -> int:
    [copy] = registry.create(
        _MOVE,
        [{
            "move_type": registry.value(_MOVE, move, "move_type"),
            "partner_id": registry.value(_MOVE, move, "partner_id"),
            "journal_id": registry.value(_MOVE, move, "journal_id"),
            "invoice_origin": registry.value(_MOVE, move, "invoice_origin"),
            "invoice_line_ids": _copied_lines(registry, move),
        }],
        uid,
    )  # fmt: skip
    return copy
