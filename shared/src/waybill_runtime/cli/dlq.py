"""`waybill dlq list|replay`: see and replay dead letters."""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_runtime.bus.dead_letters import StoredDeadLetter, iter_dead_letters, replay
from waybill_runtime.cli.identity import add_identity_options, connected_identity
from waybill_runtime.errors import UserFacingError
from waybill_runtime.security.permissions import OPERATOR


def _sequence(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a sequence number: use one `waybill dlq list` shows (1 or more)"
        )
    return int(text)


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use ISO 8601, e.g. 2026-11-27T08:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        help="NATS server (default $NATS_URL or nats://127.0.0.1:4222)",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("WAYBILL_SUBJECT_PREFIX", "waybill"),
        help="subject prefix of the installation (default $WAYBILL_SUBJECT_PREFIX or waybill)",
    )
    add_identity_options(parser, OPERATOR)
    parser.add_argument("--service", help="only dead letters of this service")
    parser.add_argument(
        "--subject", help="only messages whose original subject matches (NATS wildcards * and >)"
    )
    parser.add_argument("--since", type=_timestamp, help="only dead letters from this time on")
    parser.add_argument("--until", type=_timestamp, help="only dead letters up to this time")
    parser.add_argument(
        "--seq", type=_sequence, help="only the dead letter with this sequence number"
    )


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "dlq",
        help="list and replay dead letters",
        description="List and replay messages that services gave up on (the dead-letter stream).",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="list dead letters", description="List dead letters, oldest first."
    )
    _add_common(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=run_list)
    replaying = actions.add_parser(
        "replay",
        help="put dead letters back on their original subjects",
        description=(
            "Publish the selected dead letters again on their original subjects, then remove "
            "them from the dead-letter stream. Select with --seq, --subject, --service and/or "
            "--since/--until; with none of them nothing is replayed unless --all is given."
        ),
    )
    _add_common(replaying)
    replaying.add_argument("--all", action="store_true", help="replay every dead letter")
    replaying.add_argument(
        "--keep", action="store_true", help="leave the dead letters in the stream after replay"
    )
    replaying.add_argument(
        "--dry-run", action="store_true", help="show what would be replayed, change nothing"
    )
    replaying.set_defaults(handler=run_replay)


async def _select(args: argparse.Namespace, nc: NatsClient) -> list[StoredDeadLetter]:
    try:
        subjects = SubjectMap(args.prefix)
    except ValueError as error:
        raise UserFacingError(f"--prefix {args.prefix!r} is not valid: {error}") from None
    letters = [
        stored
        async for stored in iter_dead_letters(
            nc.jetstream(),
            subjects,
            service=args.service,
            subject_filter=args.subject,
            since=args.since,
            until=args.until,
            sequence=args.seq,
        )
    ]
    return letters


def _describe(stored: StoredDeadLetter) -> str:
    letter = stored.letter
    return (
        f"{stored.sequence:>8}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  {letter.service:<15} "
        f"{letter.original_subject}  [{letter.reason}] {letter.error_type}: {letter.error_message}"
    )


def run_list(args: argparse.Namespace) -> int:
    async def listing() -> int:
        async with connected_identity(args, args.nats_url) as nc:
            letters = await _select(args, nc)
        for stored in letters:
            if args.json:
                print(msgspec.json.encode(stored).decode())
            else:
                print(_describe(stored))
        if not args.json:
            print(f"{len(letters)} dead letter(s)")
        return 0

    return asyncio.run(listing())


def run_replay(args: argparse.Namespace) -> int:
    selective = any(
        value is not None
        for value in (args.seq, args.subject, args.service, args.since, args.until)
    )
    if not selective and not args.all:
        raise UserFacingError(
            "nothing selected: pass --seq, --subject, --service, --since/--until, or --all"
        )

    async def replaying() -> int:
        async with connected_identity(args, args.nats_url) as nc:
            letters = await _select(args, nc)
            subjects = SubjectMap(args.prefix)
            for stored in letters:
                if not args.dry_run:
                    await replay(nc.jetstream(), subjects, stored, keep=args.keep)
                print(("would replay " if args.dry_run else "replayed ") + _describe(stored))
        print(f"{len(letters)} dead letter(s) {'selected' if args.dry_run else 'replayed'}")
        return 0

    return asyncio.run(replaying())
