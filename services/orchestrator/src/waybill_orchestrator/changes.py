"""The vocabulary of the state machine: what happens to an order, what is decided, and
the few ways a state may change (move to a stage, update in place, raise an exception).

Every change goes through :func:`move` or :func:`update`, so every change
bumps ``seq`` (the part of outgoing message ids that makes them unique per
transition) and keeps ``updated_at``, deadlines and the timeline right.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec

from waybill_contracts import Message, MessageContext
from waybill_contracts.events import Event
from waybill_contracts.operations import OrderAction
from waybill_orchestrator import instructions
from waybill_orchestrator.stages import Stage
from waybill_orchestrator.state import Hold, OpenException, OrderState, Step

DEADLINE_CAUSE = "deadline"
"""``cause_type`` of timeline steps made by the deadline sweep."""


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The rules that come from configuration."""

    deadlines_s: Mapping[Stage, float] = field(default_factory=dict)
    """How long an order may stay in a stage; stages not listed have no deadline."""
    booking_attempts: int = 2
    ops_assignee_login: str | None = None
    ship_picked: bool = False
    """Short-pick policy ``ship_picked``: a short pick ships what was picked (else it holds)."""


@dataclass(frozen=True, kw_only=True)
class Observed:
    """An event from another service, as delivered, and when it is being handled."""

    event: Event
    context: MessageContext
    at: datetime


@dataclass(frozen=True, kw_only=True)
class DeadlineCheck:
    """The sweep asking whether the order's stage is past its deadline at ``at``."""

    at: datetime


@dataclass(frozen=True, kw_only=True)
class Requested:
    """An operator's action from the control tower, as delivered, and when it is being handled."""

    command: OrderAction
    context: MessageContext
    at: datetime


Happening = Observed | DeadlineCheck | Requested


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The outcome of one transition: the new state and what to send because of it."""

    state: OrderState | None
    messages: tuple[Message, ...] = ()
    notes: tuple[str, ...] = ()
    changed: bool = False
    routine: bool = False
    """Changes nothing for a reason that is routine (a carrier repeating its scans): an
    operator has nothing to learn from it, so its notes are logged at DEBUG."""
    lasting: bool = False
    """Changes nothing on this state and would change nothing on any later one (a fact
    the order has absorbed for good): it may be taken on a remembered state that
    another instance has since overtaken, so the store need not read the order."""


class NotYet(Exception):
    """The fact refers to something not seen yet (an unknown order or shipment): ask again later."""


def ignore(
    state: OrderState | None, note: str, *, routine: bool = False, lasting: bool = False
) -> Decision:
    """Nothing changes: a duplicate, a late event, or one that does not apply here."""
    return Decision(state=state, notes=(note,), routine=routine, lasting=lasting)


def cause_of(happening: Happening) -> tuple[str | None, str]:
    """The ce-id and ce-type of what caused a change (``deadline`` for the sweep), for timelines."""
    if isinstance(happening, Observed | Requested):
        return happening.context.id, happening.context.type
    return None, DEADLINE_CAUSE


def deadline_for(stage: Stage, at: datetime, policy: Policy) -> datetime | None:
    """When an order entering ``stage`` at ``at`` becomes late."""
    seconds = policy.deadlines_s.get(stage)
    return at + timedelta(seconds=seconds) if seconds is not None else None


def update(
    state: OrderState,
    happening: Happening,
    *,
    messages: tuple[Message, ...] = (),
    note: str | None = None,
    step: bool = False,
    **changes: Any,
) -> Decision:
    """Change the order without moving it; ``step`` records it in the timeline all the same."""
    timeline = state.timeline
    if step:
        cause_id, cause_type = cause_of(happening)
        timeline = (
            *timeline,
            Step(
                at=happening.at,
                from_stage=state.stage,
                to_stage=state.stage,
                cause_id=cause_id,
                cause_type=cause_type,
                note=note,
            ),
        )
    new = msgspec.structs.replace(
        state, seq=state.seq + 1, updated_at=happening.at, timeline=timeline, **changes
    )
    return Decision(state=new, messages=messages, notes=(note,) if note else (), changed=True)


def move(
    state: OrderState,
    to: Stage,
    happening: Happening,
    policy: Policy,
    *,
    messages: tuple[Message, ...] = (),
    note: str | None = None,
    hold: Hold | None = None,
    **changes: Any,
) -> Decision:
    """Move the order to stage ``to``; leaving ``held`` closes the hold's exception."""
    open_exceptions = changes.pop("open_exceptions", state.open_exceptions)
    if state.hold is not None and (hold is None or hold.exception_id != state.hold.exception_id):
        # The hold is over (or replaced): its exception is no longer open.
        open_exceptions = tuple(
            e for e in open_exceptions if e.exception_id != state.hold.exception_id
        )
    cause_id, cause_type = cause_of(happening)
    step = Step(
        at=happening.at,
        from_stage=state.stage,
        to_stage=to,
        cause_id=cause_id,
        cause_type=cause_type,
        note=note,
    )
    new = msgspec.structs.replace(
        state,
        stage=to,
        seq=state.seq + 1,
        updated_at=happening.at,
        stage_since=happening.at,
        deadline_at=deadline_for(to, happening.at, policy),
        deadline_resends=0,
        hold=hold,
        open_exceptions=open_exceptions,
        timeline=(*state.timeline, step),
        **changes,
    )
    return Decision(state=new, messages=messages, notes=(note,) if note else (), changed=True)


def then(first: Decision, second: Decision) -> Decision:
    """Two changes in a row, as one decision (e.g. shipped, then straight to recording delivery)."""
    return Decision(
        state=second.state,
        messages=first.messages + second.messages,
        notes=first.notes + second.notes,
        changed=first.changed or second.changed,
    )


# Problem codes (``ExceptionRaised.code``) the process raises; deadlines add ``deadline_<stage>``.
SHORT_PICK = "short_pick"
SHIPS_PICKED = "ships_picked"
BOOKING_FAILED = "booking_failed"
WAREHOUSE_CANCELLED = "warehouse_cancelled"
CANCELLED_TOO_LATE = "cancelled_after_shipping"
WAREHOUSE_CANCEL_REFUSED = "warehouse_cancel_refused"
VOID_REFUSED = "void_refused"
PICKING_NOT_VALIDATED = "picking_not_validated"


@dataclass(frozen=True, kw_only=True)
class Problem:
    """An exception to raise for ops: what, where, and whether the order stops."""

    code: str
    summary: str
    detail: str | None = None
    stage: Stage


def has_open(state: OrderState, code: str) -> bool:
    """True when an exception with ``code`` is open for this order."""
    return any(e.code == code for e in state.open_exceptions)


def raise_problem(
    state: OrderState, problem: Problem, happening: Happening, policy: Policy, *, held: bool
) -> tuple[str, tuple[Message, ...], dict[str, Any]]:
    """The exception id, the messages (event for ops, note in Odoo) and the state changes."""
    number = state.exceptions_raised + 1
    exception_id = instructions.exception_id_for(state.order_ref, number)
    messages: tuple[Message, ...] = (
        instructions.exception_raised(
            state,
            exception_id=exception_id,
            stage=problem.stage.value,
            code=problem.code,
            summary=problem.summary,
            detail=problem.detail,
            order_held=held,
            at=happening.at,
        ),
        instructions.odoo_note(
            state,
            exception_id=exception_id,
            summary=problem.summary,
            detail=problem.detail,
            assignee_login=policy.ops_assignee_login,
        ),
    )
    opened = OpenException(exception_id=exception_id, code=problem.code, summary=problem.summary)
    changes = {
        "exceptions_raised": number,
        "open_exceptions": (*state.open_exceptions, opened),
    }
    return exception_id, messages, changes


def flag(
    state: OrderState, problem: Problem, happening: Happening, policy: Policy, **changes: Any
) -> Decision:
    """Raise an exception for ops; the order goes on (or stays) where it is."""
    if has_open(state, problem.code):
        return ignore(state, f"exception {problem.code} is already open")
    _id, messages, raised = raise_problem(state, problem, happening, policy, held=False)
    return update(
        state, happening, messages=messages, note=problem.summary, step=True, **raised, **changes
    )


def hold(
    state: OrderState,
    problem: Problem,
    happening: Happening,
    policy: Policy,
    *,
    resumable: bool,
    **changes: Any,
) -> Decision:
    """Stop the order for a person: held, exception event, chatter note and activity in Odoo."""
    exception_id, messages, raised = raise_problem(state, problem, happening, policy, held=True)
    held_from = state.hold.held_from if state.hold is not None else state.stage
    return move(
        state,
        Stage.HELD,
        happening,
        policy,
        messages=messages,
        note=problem.summary,
        hold=Hold(
            code=problem.code,
            held_from=held_from,
            exception_id=exception_id,
            resumable=resumable,
        ),
        **raised,
        **changes,
    )
