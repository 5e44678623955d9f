"""`waybill dlq list|replay`: see and replay dead letters."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
from datetime import UTC, datetime

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from waybill_contracts import SubjectMap
from waybill_runtime.bus.dead_letters import StoredDeadLetter, iter_dead_letters
from waybill_runtime.bus.replay import ReplayRefused, refusal, replay
from waybill_runtime.cli.identity import add_identity_options, connected_identity
from waybill_runtime.cli.options import add_nats_url_option, add_prefix_option
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


def _operator(text: str) -> str:
    name = text.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an operator name: use your name or login, printable, 1 to 200 "
            "characters"
        )
    return name


def default_operator() -> str:
    """Who replays when ``--operator`` is not given: ``$WAYBILL_OPERATOR``, else the OS user."""
    named = os.environ.get("WAYBILL_OPERATOR", "").strip()
    if named:
        return _operator(named)
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise UserFacingError(
            "cannot tell who is replaying (no OS user name): pass --operator NAME or set "
            "WAYBILL_OPERATOR"
        ) from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_nats_url_option(parser)
    add_prefix_option(parser)
    add_identity_options(parser, OPERATOR)
    parser.add_argument(
        "--service", help="only dead letters of this service (the one that gave up)"
    )
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
            "--since/--until; with none of them nothing is replayed unless --all is given. "
            "Only letters whose original is a Waybill event or command of its own ce-type are "
            "replayed; any other is refused (one line each, exit status 1), the rest go on."
        ),
    )
    _add_common(replaying)
    replaying.add_argument("--all", action="store_true", help="replay every dead letter")
    replaying.add_argument(
        "--operator",
        type=_operator,
        default=None,
        help="who replays, recorded in the audit trail (default $WAYBILL_OPERATOR, else the "
        "OS user)",
    )
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
    if args.service is not None:
        try:
            subjects.dlq_subject(args.service)
        except ValueError as error:
            raise UserFacingError(f"--service {args.service!r} is not valid: {error}") from None
    try:
        await nc.jetstream().stream_info(subjects.dlq_stream.name)
    except NotFoundError:
        raise UserFacingError(
            f"no dead-letter stream under prefix {args.prefix} ({subjects.dlq_stream.name}): "
            "nothing was provisioned there; check --prefix (WAYBILL_SUBJECT_PREFIX) or run "
            "`waybill provision`"
        ) from None
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

    try:
        operator = args.operator or default_operator()
    except argparse.ArgumentTypeError as error:
        raise UserFacingError(f"WAYBILL_OPERATOR: {error}") from None

    async def replaying() -> int:
        refused = failed = 0
        async with connected_identity(args, args.nats_url) as nc:
            letters = await _select(args, nc)
            subjects = SubjectMap(args.prefix)
            for stored in letters:
                try:
                    if args.dry_run:
                        reason = refusal(subjects, stored.letter)
                        if reason is not None:
                            raise ReplayRefused(reason)
                    else:
                        await replay(
                            nc.jetstream(), subjects, stored, operator=operator, keep=args.keep
                        )
                except ReplayRefused as error:
                    refused += 1
                    print(f"refused dead letter {stored.sequence}: {error}")
                    continue
                except (nats.errors.Error, OSError) as error:
                    failed += 1
                    print(
                        f"could not replay dead letter {stored.sequence} "
                        f"({type(error).__name__}: {error}); it stays in the dead-letter stream, "
                        "try again with --seq"
                    )
                    continue
                print(
                    ("would replay " if args.dry_run else f"replayed (by {operator}) ")
                    + _describe(stored)
                )
        done = len(letters) - refused - failed
        print(
            f"{done} dead letter(s) {'selected' if args.dry_run else 'replayed'}"
            + (f", {refused} refused" if refused else "")
            + (f", {failed} failed" if failed else "")
        )
        return 1 if refused or failed else 0

    return asyncio.run(replaying())
