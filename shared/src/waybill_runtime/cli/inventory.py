"""``waybill inventory approve REFERENCE``: an operator approves a held stock adjustment.

The command-line twin of the control tower's "Apply in Odoo": it sends the
operator action of the contracts (``ApproveInventoryAdjustment``) from the
command line operators already use for dead letters
(:mod:`waybill_runtime.cli.operator_actions`). Its executor (the contracts
name it) applies it once, however often it is sent.
"""

from __future__ import annotations

import argparse
import uuid

from waybill_contracts.operations import ApproveInventoryAdjustment
from waybill_runtime.cli.operator_actions import add_sender_options, operator_of, send_action

__all__ = ["register", "run_approve"]


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``waybill inventory approve``."""
    inventory = subcommands.add_parser("inventory", help="warehouse stock adjustments")
    commands = inventory.add_subparsers(title="commands", metavar="COMMAND", required=True)
    approve = commands.add_parser(
        "approve",
        help="apply a warehouse stock adjustment held for approval",
        description=(
            "Send ApproveInventoryAdjustment for a held adjustment (InventoryAdjustmentHeld's "
            "reference, in the audit trail and the holder's log): it is applied once and "
            "InventoryAdjustmentApplied names you. Runs as the operator NATS identity."
        ),
    )
    approve.add_argument("reference", help="the held adjustment's reference")
    add_sender_options(approve, doing="approves")
    approve.set_defaults(handler=run_approve)


def run_approve(args: argparse.Namespace) -> int:
    """Send the approval; exit 0 once JetStream stored it."""
    operator = operator_of(args)
    send_action(
        args,
        ApproveInventoryAdjustment(
            action_id=uuid.uuid4().hex, operator=operator, reference=args.reference, note=args.note
        ),
    )
    print(
        f"approval of inventory adjustment {args.reference} sent (by {operator}); "
        "InventoryAdjustmentApplied says when it is applied"
    )
    return 0
