"""What every operator action sent from the command line shares: who sends it, and how.

An operator action (``waybill_contracts.operations``) goes out as the
``operator`` NATS identity (``ce-source`` ``waybill/operator``), naming the
operator as ``waybill dlq replay`` does (``--operator``, else
``$WAYBILL_OPERATOR``, else the OS user). The command modules
(``waybill inventory approve``, ``waybill sync products``) build the action;
this module adds their common options and sends it, checked against its
contract, returning once JetStream stored it.
"""

from __future__ import annotations

import argparse
import asyncio

from waybill_contracts import ContractError, SubjectMap, validate
from waybill_contracts.messages import Command
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.cli.dlq import default_operator
from waybill_runtime.cli.identity import add_identity_options, connected_identity
from waybill_runtime.cli.options import (
    add_nats_url_option,
    add_prefix_option,
)
from waybill_runtime.errors import UserFacingError
from waybill_runtime.security.permissions import OPERATOR

__all__ = ["add_sender_options", "operator_of", "send_action"]


def add_sender_options(parser: argparse.ArgumentParser, *, doing: str) -> None:
    """``--operator``, ``--note``, the NATS server, the prefix and the operator identity."""
    parser.add_argument(
        "--operator", help=f"who {doing} (default $WAYBILL_OPERATOR, else the OS user)"
    )
    parser.add_argument("--note", help="why, for the record")
    add_nats_url_option(parser)
    add_prefix_option(parser)
    add_identity_options(parser, OPERATOR)


def operator_of(args: argparse.Namespace) -> str:
    """The operator the action names."""
    return str(args.operator or default_operator())


def send_action(args: argparse.Namespace, action: Command) -> None:
    """Send ``action`` as the operator identity; return once JetStream stored it."""
    try:
        validate(action)
    except ContractError as wrong:
        raise UserFacingError(f"cannot send that {type(action).__name__}: {wrong}") from None

    async def sending() -> None:
        async with connected_identity(args, args.nats_url) as nc:
            # The runtime's publisher: the body checked as sent, stored once JetStream acks it.
            await Publisher(nc, SubjectMap(args.prefix), service=OPERATOR).publish(action)

    asyncio.run(sending())
