"""`waybill ping SERVICE`: does the service answer `$SRV.PING` on NATS? (`helm test` asks this.)

Every running instance of a service answers the ADR-32 discovery request on
``$SRV.PING.<prefix>-<service>`` (:mod:`waybill_runtime.queries`), so an answer
proves the instance is connected with its own identity and serving. Runs as
the operator identity, which may ask discovery requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import msgspec
from nats.aio.msg import Msg

from waybill_contracts import SubjectMap
from waybill_runtime.cli.identity import add_identity_options, connected_identity
from waybill_runtime.cli.options import add_nats_url_option, subject_prefix_from_env
from waybill_runtime.errors import UserFacingError
from waybill_runtime.queries.discovery import DISCOVERY_PREFIX, PingResponse
from waybill_runtime.security.permissions import OPERATOR


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "ping",
        help="check that a service answers $SRV.PING on NATS (as the operator identity)",
        description=(
            "Send the NATS service discovery PING to SERVICE and list the instances that "
            "answer. Exits 0 when at least --expect instances answered within --timeout."
        ),
    )
    parser.add_argument(
        "service", metavar="SERVICE", help="the service's name (`waybill services` lists them)"
    )
    add_nats_url_option(parser)
    parser.add_argument(
        "--subject-prefix",
        default=None,
        help="subject prefix the service runs under (default $WAYBILL_SUBJECT_PREFIX or waybill)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for answers (default 5)"
    )
    parser.add_argument(
        "--expect", type=int, default=1, help="instances that must answer (default 1)"
    )
    add_identity_options(parser, OPERATOR)
    parser.set_defaults(handler=run_ping)


async def ping(
    args: argparse.Namespace, subject: str, *, timeout_s: float, expect: int
) -> list[PingResponse]:
    """The instances that answered ``subject`` within ``timeout_s`` (stops at ``expect``)."""
    answers: list[PingResponse] = []
    enough = asyncio.Event()

    async def on_answer(msg: Msg) -> None:
        try:
            answers.append(msgspec.json.decode(msg.data, type=PingResponse))
        except msgspec.DecodeError:
            return
        if len(answers) >= expect:
            enough.set()

    async with connected_identity(args, args.nats_url) as nc:
        inbox = nc.new_inbox()
        subscription = await nc.subscribe(inbox, cb=on_answer)
        await nc.publish(subject, b"", reply=inbox)
        await nc.flush()
        # Fewer answers than expected is the caller's to judge.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), timeout_s)
        await subscription.unsubscribe()
    return answers


def run_ping(args: argparse.Namespace) -> int:
    if args.timeout <= 0 or args.expect < 1:
        raise UserFacingError("--timeout must be above 0 and --expect at least 1")
    prefix = args.subject_prefix or subject_prefix_from_env()
    name = SubjectMap(prefix).query_service_name(args.service)
    subject = f"{DISCOVERY_PREFIX}.PING.{name}"
    answers = asyncio.run(ping(args, subject, timeout_s=args.timeout, expect=args.expect))
    for answer in answers:
        print(f"{answer.name} {answer.version} instance {answer.id} answered")
    if len(answers) < args.expect:
        raise UserFacingError(
            f"{len(answers)} instance(s) of {args.service} answered {subject} within "
            f"{args.timeout:g} s, {args.expect} expected: is it running, connected to "
            f"{args.nats_url.rsplit('@', 1)[-1]} under subject prefix {prefix}?"
        )
    return 0
