"""``waybill sync products``: an operator runs a product master sync now.

Sends the operator action ``StartProductSync``
(:mod:`waybill_runtime.cli.operator_actions`, as ``waybill inventory approve``
does), whatever the schedule (``WAYBILL_PRODUCT_SYNC_INTERVAL_S`` may be off):
its executor, which the contracts name, reads the products written since the
last run and publishes them, once per action.
The run's end is announced as ``ProductSyncCompleted`` (counts and rejects),
in the audit trail and on the control tower.
"""

from __future__ import annotations

import argparse
import uuid

from waybill_contracts.operations import StartProductSync
from waybill_runtime.cli.operator_actions import add_sender_options, operator_of, send_action

__all__ = ["register", "run_products"]


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``waybill sync products``."""
    sync = subcommands.add_parser("sync", help="batch synchronisations, started now")
    commands = sync.add_subparsers(title="commands", metavar="COMMAND", required=True)
    products = commands.add_parser(
        "products",
        help="run a product master sync now (the ERP's products to the warehouse)",
        description=(
            "Send StartProductSync: the products written in the ERP since the last run are "
            "validated and sent to the warehouse now, whatever the schedule; "
            "ProductSyncCompleted says how it went. Runs as the operator NATS identity."
        ),
    )
    add_sender_options(products, doing="starts it")
    products.set_defaults(handler=run_products)


def run_products(args: argparse.Namespace) -> int:
    """Send the action; exit 0 once JetStream stored it."""
    operator = operator_of(args)
    action_id = uuid.uuid4().hex
    send_action(args, StartProductSync(action_id=action_id, operator=operator, note=args.note))
    print(
        f"product sync requested (by {operator}, action {action_id}); "
        "ProductSyncCompleted says when it finished"
    )
    return 0
