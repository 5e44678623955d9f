"""``waybill inventory approve REFERENCE``: an operator approves a held stock adjustment.

The control tower has no page for held adjustments yet; this sends the
operator action of the contracts (``ApproveInventoryAdjustment``) from the
command line operators already use for dead letters, as the ``operator``
NATS identity (``ce-source`` ``waybill/operator``), naming the operator as
``waybill dlq replay`` does (``--operator``, else ``$WAYBILL_OPERATOR``, else
the OS user). Its executor (the contracts name it) applies it once, however
often it is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid

from waybill_contracts import ContractError, SubjectMap, validate
from waybill_contracts.operations import ApproveInventoryAdjustment
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.cli.dlq import default_operator
from waybill_runtime.cli.identity import add_identity_options, connected_identity
from waybill_runtime.cli.options import subject_prefix_from_env
from waybill_runtime.errors import UserFacingError
from waybill_runtime.security.permissions import OPERATOR

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
    approve.add_argument(
        "--operator", help="who approves (default $WAYBILL_OPERATOR, else the OS user)"
    )
    approve.add_argument("--note", help="why, for the record")
    approve.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        help="NATS server (default $NATS_URL or nats://127.0.0.1:4222)",
    )
    approve.add_argument(
        "--prefix",
        default=subject_prefix_from_env(),
        help="subject prefix of the installation (default $WAYBILL_SUBJECT_PREFIX or waybill)",
    )
    add_identity_options(approve, OPERATOR)
    approve.set_defaults(handler=run_approve)


def run_approve(args: argparse.Namespace) -> int:
    """Send the approval; exit 0 once JetStream stored it."""
    operator = args.operator or default_operator()
    command = ApproveInventoryAdjustment(
        action_id=uuid.uuid4().hex, operator=operator, reference=args.reference, note=args.note
    )
    try:
        validate(command)
    except ContractError as wrong:
        raise UserFacingError(f"cannot send that approval: {wrong}") from None

    async def sending() -> None:
        async with connected_identity(args, args.nats_url) as nc:
            # The runtime's publisher: the body checked as sent, stored once JetStream acks it.
            await Publisher(nc, SubjectMap(args.prefix), service=OPERATOR).publish(command)

    asyncio.run(sending())
    print(
        f"approval of inventory adjustment {args.reference} sent (by {operator}); "
        "InventoryAdjustmentApplied says when it is applied"
    )
    return 0
