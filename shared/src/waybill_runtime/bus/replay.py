"""Replaying dead letters: only to Waybill event and command subjects, and on record.

A dead letter is data anyone who can publish to the dead-letter stream can
forge, and a replay publishes it with the operator's rights. So a letter is
replayed only when its original subject is an event or command subject of
the subject map and its ``ce-type`` is the type that subject carries;
anything else (a ``$JS.API`` subject, a query, a reply inbox, a type that
does not match) is refused with the reason (:class:`ReplayRefused`).

The replayed message names the dead letter (``Waybill-Replayed-From``) and
the operator who replayed it (``Waybill-Replayed-By``), which the auditor
records in the order's timeline. A letter whose body was cut to fit the
server is replayed from the whole original, read from its stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import NamedTuple

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from waybill_contracts import ContractError, MessageKind, SubjectMap, binding
from waybill_contracts.envelope import HEADER_ID, HEADER_NATS_MSG_ID, attributes_of
from waybill_runtime.bus.dead_letter_format import DeadLetter
from waybill_runtime.bus.dead_letters import StoredDeadLetter

__all__ = [
    "REPLAYED_BY_HEADER",
    "REPLAYED_FROM_HEADER",
    "ReplayMark",
    "ReplayRefused",
    "refusal",
    "replay",
    "replay_mark",
]

REPLAYED_FROM_HEADER = "Waybill-Replayed-From"
"""On a replayed message: the dead letter's sequence in the dead-letter stream."""
REPLAYED_BY_HEADER = "Waybill-Replayed-By"
"""On a replayed message: the operator who replayed it (percent-encoded as ce- values are)."""

_REPLAYABLE = (MessageKind.EVENT, MessageKind.COMMAND)


class ReplayMark(NamedTuple):
    """What a replayed message says about its replay."""

    dead_letter: int
    """The dead letter's sequence in the dead-letter stream."""
    operator: str
    """Who replayed it (``unknown`` for replays made before operators were named)."""


def replay_mark(headers: Mapping[str, str]) -> ReplayMark | None:
    """The replay a message's headers name, or ``None`` when it is not a replay."""
    sequence = binding.find_header(headers, REPLAYED_FROM_HEADER.lower())
    if sequence is None or not sequence.isdigit():
        return None
    operator = binding.find_header(headers, REPLAYED_BY_HEADER.lower()) or "unknown"
    # Kept as it came when it does not decode: it still names someone.
    with contextlib.suppress(ContractError):
        operator = binding.decode_value(operator, header=REPLAYED_BY_HEADER)
    return ReplayMark(dead_letter=int(sequence), operator=operator)


class ReplayRefused(Exception):
    """This dead letter is not replayed; the text says why and what to do."""


def refusal(subjects: SubjectMap, letter: DeadLetter) -> str | None:
    """Why ``letter`` must not be replayed, or ``None`` when it may be."""
    subject = letter.original_subject
    message_type = subjects.find_message_type(subject)
    if message_type is None or message_type.kind not in _REPLAYABLE:
        return (
            f"original subject {subject!r} is not an event or command subject of prefix "
            f"{subjects.prefix!r}; only those are replayed (inspect it with `waybill dlq list`)"
        )
    expected = subjects.ce_type_for(message_type)
    found = attributes_of(letter.original_headers, letter.original_body).get("type")
    if found != expected:
        return (
            f"ce-type {found!r} does not match subject {subject!r}, which carries {expected!r}; "
            "a forged or misrouted letter is not replayed"
        )
    return None


async def _whole_body(js: JetStreamContext, letter: DeadLetter) -> bytes:
    if not letter.truncated:
        return letter.original_body
    try:
        original = await js.get_msg(letter.original_stream, letter.original_sequence)
    except NotFoundError:
        raise ReplayRefused(
            f"the letter holds only the first {len(letter.original_body)} of "
            f"{letter.original_size} bytes and the original is no longer in stream "
            f"{letter.original_stream} at sequence {letter.original_sequence}; it cannot be "
            "replayed whole"
        ) from None
    return original.data or b""


async def replay(
    js: JetStreamContext,
    subjects: SubjectMap,
    stored: StoredDeadLetter,
    *,
    operator: str,
    keep: bool = False,
) -> None:
    """Put a dead-lettered message back on its original subject, then drop the dead letter.

    ``operator`` (who replays it) goes with the message, for the audit trail.

    :class:`ReplayRefused` (nothing published, the letter stays) when the
    letter may not be replayed. The replay gets a fresh ``Nats-Msg-Id`` (the
    original id would be dropped as a duplicate inside the stream's window)
    but keeps ``ce-id``, so handlers' idempotency still recognises the message.
    """
    letter = stored.letter
    reason = refusal(subjects, letter)
    if reason is not None:
        raise ReplayRefused(reason)
    body = await _whole_body(js, letter)
    original = letter.original_headers
    original_id = (
        binding.find_header(original, HEADER_NATS_MSG_ID.lower())
        or binding.find_header(original, HEADER_ID)
        or "unknown"
    )
    # Whatever case the original spelled them in, these are replaced.
    replaced = {
        HEADER_NATS_MSG_ID.lower(),
        REPLAYED_FROM_HEADER.lower(),
        REPLAYED_BY_HEADER.lower(),
    }
    headers = {name: value for name, value in original.items() if name.lower() not in replaced}
    headers[HEADER_NATS_MSG_ID] = f"{original_id}:replay:{stored.sequence}"
    headers[REPLAYED_FROM_HEADER] = str(stored.sequence)
    headers[REPLAYED_BY_HEADER] = binding.encode_value(operator)
    await js.publish(letter.original_subject, body, headers=headers)
    if not keep:
        await js.delete_msg(subjects.dlq_stream.name, stored.sequence)
