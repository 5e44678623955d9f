"""The messages a stored transition decided, kept with the state until they are published.

Their ids are derived from the order, the transition's sequence number and
the message itself, so publishing one again (after a crash, a redelivery, or
by another instance reading the same state) is recognised as the same
message: JetStream drops it within its duplicate window, and the adapters'
business keys cover the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

import msgspec

from waybill_contracts import Message, MessageContext, ce_type_for, fact_id
from waybill_contracts import message_type_for_ce_type as _type_of
from waybill_orchestrator.state import PendingMessage

_ENCODER = msgspec.json.Encoder()
SOURCE = "orchestrator"


class Outboxed(Protocol):
    """A process state that keeps its undelivered messages: an order's, a return's."""

    @property
    def workflow_ref(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def outbox(self) -> tuple[PendingMessage, ...]: ...


S = TypeVar("S", bound=Outboxed)


def message_id_for(state: Outboxed, message: Message) -> str:
    """The id of ``message`` sent by transition ``state.seq`` of the order (or return)."""
    return _message_id(state, message, ce_type_for(type(message)))


def _message_id(state: Outboxed, message: Message, ce_type: str) -> str:
    return fact_id(SOURCE, state.workflow_ref, state.seq, ce_type, message.business_key())


def _entry(
    state: Outboxed, message: Message, cause: MessageContext | None, correlation: str
) -> PendingMessage:
    ce_type = ce_type_for(type(message))
    return PendingMessage(
        message_id=_message_id(state, message, ce_type),
        ce_type=ce_type,
        body=msgspec.Raw(_ENCODER.encode(message)),
        cause=cause,
        correlation_id=correlation,
    )


def pending(
    state: Outboxed, messages: Iterable[Message], cause: MessageContext | None
) -> tuple[PendingMessage, ...]:
    """``messages`` made ready to keep in ``state`` (which holds the transition's ``seq``)."""
    correlation = cause.correlation_id if cause is not None else state.workflow_ref
    return tuple(_entry(state, message, cause, correlation) for message in messages)


def with_entries(state: S, added: tuple[PendingMessage, ...]) -> S:
    """``state`` with the entries ``added`` (made by :func:`pending`) added to its outbox."""
    if not added:
        return state
    return msgspec.structs.replace(state, outbox=(*state.outbox, *added))  # type: ignore[type-var]


def decided_messages(
    added: tuple[PendingMessage, ...], messages: tuple[Message, ...]
) -> dict[str, Message]:
    """The typed messages ``added`` was made of, by entry id: what the instance that decided
    them publishes, with no decode of the bodies it has just encoded."""
    return {entry.message_id: message for entry, message in zip(added, messages, strict=True)}


def message_of(entry: PendingMessage) -> Message:
    """The typed message an outbox entry holds (one read from the bucket: its body decoded)."""
    message_type = _type_of(entry.ce_type)
    return msgspec.json.decode(bytes(entry.body), type=message_type)


def without(state: S, sent: set[str]) -> S:
    """``state`` with the entries whose ids are in ``sent`` taken out of its outbox."""
    return msgspec.structs.replace(  # type: ignore[type-var]
        state, outbox=tuple(entry for entry in state.outbox if entry.message_id not in sent)
    )
