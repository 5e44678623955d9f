"""Operator actions from the control tower's pages: each a command on the bus, sent by the
auditor on behalf of the signed-in operator, whose token's subject it names.

Who may: the routes need the operator role (the middleware answers a viewer's
forged post with a 403 problem before anything here runs), and a post
authenticated by the session cookie must carry its CSRF token
(:mod:`waybill_runtime.http.browser`). Each form carries an ``action_id``
made when the page was drawn: sending the form twice is one action (the
command's message id and its executor's key both derive from it).

Who acts: the orchestrator owns order state (retry, release, cancel the
shipment, resolve an exception) and returns (retry a return's step); the
odoo-gateway applies a held stock
adjustment an operator approves and runs a product sync started from the
product syncs page. A dead letter is replayed by the auditor
itself, as `waybill dlq replay` does (:mod:`waybill_auditor.replays`): the
replayed message, on the bus, names the operator.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import msgspec
import nats.errors
from aiohttp import web
from nats.js.client import JetStreamContext

from waybill_auditor.replays import Replayed, replay_for_operator
from waybill_auditor.stages import FINAL, Stage
from waybill_auditor.views import OrderView, TimelineEntry
from waybill_contracts import SubjectMap
from waybill_contracts.events import ExceptionRaised, ShipmentBooked
from waybill_contracts.operations import (
    ApproveInventoryAdjustment,
    CancelOrderShipment,
    OrderAction,
    ReleaseHeldOrder,
    ResolveException,
    RetryOrderStage,
    RetryReturnStep,
    StartProductSync,
)
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.bus.replay import ReplayRefused
from waybill_runtime.http import ProblemError, principal_of

ACTIONS = "/tower/actions"
_ACTION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_FORM = "application/x-www-form-urlencoded"

# The form fields, described for the OpenAPI document.
_Csrf = Annotated[str, msgspec.Meta(description="The page's CSRF token (with the session cookie).")]
_ActionId = Annotated[str, msgspec.Meta(description="Id made when the page was drawn.")]
_Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=256, description="The order.")]
_Note = Annotated[str, msgspec.Meta(max_length=2000, description="A note for the record.")]


class OrderActionForm(msgspec.Struct, frozen=True, kw_only=True):
    """Retry, release or cancel the shipment of one order."""

    action_id: _ActionId
    order_ref: _Ref
    note: _Note = ""
    csrf_token: _Csrf = ""


class ResolveForm(msgspec.Struct, frozen=True, kw_only=True):
    """Resolve one open exception of an order."""

    action_id: _ActionId
    order_ref: _Ref
    exception_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    note: Annotated[str, msgspec.Meta(max_length=2000, description="What was done (required).")]
    csrf_token: _Csrf = ""


class SyncProductsForm(msgspec.Struct, frozen=True, kw_only=True):
    """Run a product master sync now."""

    action_id: _ActionId
    note: _Note = ""
    csrf_token: _Csrf = ""


class ApproveAdjustmentForm(msgspec.Struct, frozen=True, kw_only=True):
    """Apply a held warehouse stock adjustment in Odoo."""

    action_id: _ActionId
    reference: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, description="The held adjustment.")
    ]
    note: _Note = ""
    csrf_token: _Csrf = ""


class RetryReturnForm(msgspec.Struct, frozen=True, kw_only=True):
    """Try a return's step again (once its cause is fixed)."""

    action_id: _ActionId
    return_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128, description="The return.")]
    note: _Note = ""
    csrf_token: _Csrf = ""


class ReplayForm(msgspec.Struct, frozen=True, kw_only=True):
    """Replay one dead letter."""

    action_id: _ActionId
    dlq_sequence: Annotated[int, msgspec.Meta(ge=1)]
    order_ref: _Ref | None = None
    csrf_token: _Csrf = ""


@dataclass(frozen=True)
class OrderActionKind:
    """One kind of action on an order: its route, its command, how the page offers it."""

    slug: str
    command: type[RetryOrderStage | ReleaseHeldOrder | CancelOrderShipment]
    label: str
    help: str
    style: str = ""


RETRY = OrderActionKind(
    "retry-stage",
    RetryOrderStage,
    "Retry current stage",
    "Sends the command this stage waits on again.",
)
RELEASE = OrderActionKind(
    "release-hold",
    ReleaseHeldOrder,
    "Release hold",
    "The order goes on from where it stopped (a booking is tried afresh).",
)
CANCEL_SHIPMENT = OrderActionKind(
    "cancel-shipment",
    CancelOrderShipment,
    "Cancel shipment",
    "Voids the label and holds the order; releasing it books a new one.",
    "danger",
)
ORDER_ACTION_KINDS = (RETRY, RELEASE, CANCEL_SHIPMENT)
RESOLVE_PATH = f"{ACTIONS}/resolve-exception"
REPLAY_PATH = f"{ACTIONS}/replay-dead-letter"
SYNC_PRODUCTS_PATH = f"{ACTIONS}/sync-products"
APPROVE_ADJUSTMENT_PATH = f"{ACTIONS}/approve-adjustment"
RETRY_RETURN_PATH = f"{ACTIONS}/retry-return-step"
ACTION_SLUGS = frozenset(
    {
        *(kind.slug for kind in ORDER_ACTION_KINDS),
        "resolve-exception",
        "replay-dead-letter",
        "sync-products",
        "approve-adjustment",
        "retry-return-step",
    }
)


OperatorCommand = OrderAction | StartProductSync | ApproveInventoryAdjustment | RetryReturnStep
"""What the auditor sends for an operator (each carries the form's ``action_id``)."""


F = TypeVar("F", SyncProductsForm, ApproveAdjustmentForm, RetryReturnForm)


def new_action_id() -> str:
    """A fresh id for one form as drawn."""
    return uuid.uuid4().hex


def _open_exceptions(
    entries: Sequence[TimelineEntry], subjects: SubjectMap
) -> list[dict[str, str]]:
    raised_type = subjects.ce_type_for(ExceptionRaised)
    resolve_type = subjects.ce_type_for(ResolveException)
    resolved = {
        e.data.get("exception_id")
        for e in entries
        if e.type == resolve_type and isinstance(e.data, dict)
    }
    found: dict[str, dict[str, str]] = {}
    for entry in entries:
        data = entry.data
        if entry.type != raised_type or not isinstance(data, dict):
            continue
        exception_id = str(data.get("exception_id") or "")
        if exception_id and exception_id not in resolved:
            found[exception_id] = {"id": exception_id, "summary": str(data.get("summary") or "")}
    return list(found.values())


def _label_standing(entries: Sequence[TimelineEntry], subjects: SubjectMap) -> bool:
    # A label was bought, and no one cancelled the shipment since (entries are in causal order).
    booked, cancelled = (
        subjects.ce_type_for(ShipmentBooked),
        subjects.ce_type_for(CancelOrderShipment),
    )
    standing = False
    for entry in entries:
        if entry.type == booked:
            standing = True
        elif entry.type == cancelled:
            standing = False
    return standing


def order_actions(
    order: OrderView | None, entries: Sequence[TimelineEntry], subjects: SubjectMap
) -> list[dict[str, Any]]:
    """The actions the order's page offers an operator now (the orchestrator has the last word)."""
    if order is None or order.stage in FINAL:
        return []
    hidden = {"order_ref": order.order_ref}
    offered: list[dict[str, Any]] = []

    def offer(kind: OrderActionKind, note_label: str = "Note (optional)") -> None:
        offered.append(
            {
                "path": f"{ACTIONS}/{kind.slug}",
                "label": kind.label,
                "help": kind.help,
                "style": kind.style,
                "hidden": {**hidden, "action_id": new_action_id()},
                "note": True,
                "note_label": note_label,
                "note_required": False,
            }
        )

    if order.stage == Stage.HELD:
        offer(RELEASE)
    elif order.stage not in (Stage.CANCELLING, Stage.UNKNOWN):
        offer(RETRY)
    if order.stage in (Stage.BOOKED, Stage.RECORDING, Stage.HELD) and _label_standing(
        entries, subjects
    ):
        offer(CANCEL_SHIPMENT, "Why (sent to the carrier with the void)")
    for exception in _open_exceptions(entries, subjects):
        offered.append(
            {
                "path": RESOLVE_PATH,
                "label": f"Resolve exception {exception['id']}",
                "help": exception["summary"],
                "style": "",
                "hidden": {**hidden, "exception_id": exception["id"], "action_id": new_action_id()},
                "note": True,
                "note_label": "What was done (goes to Odoo's chatter)",
                "note_required": True,
            }
        )
    return offered


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _bad(name: str, reason: str) -> ProblemError:
    return ProblemError(
        400, "Bad Request", f"{name}: {reason}", invalid_params=[{"name": name, "reason": reason}]
    )


async def _form(request: web.Request, type_: type[Any]) -> Any:
    if request.content_type != _FORM:
        raise ProblemError(415, "Unsupported Media Type", f"send the form as {_FORM}")
    form = await request.post()
    fields: dict[str, Any] = {name: _field(form, name) for name in type_.__struct_fields__}
    for name in list(fields):
        if not fields[name] and name not in ("note", "csrf_token"):
            del fields[name]  # absent: the type says whether it may be
    try:
        decoded = msgspec.convert(fields, type_, strict=False)
    except msgspec.ValidationError as error:
        raise ProblemError(
            422, "Unprocessable Content", f"the form is not valid: {error}"
        ) from None
    if not _ACTION_ID.match(decoded.action_id):
        raise _bad("action_id", "not an id this page made; reload the page")
    return decoded


def _order_page(ref: str, done: str) -> str:
    return f"/tower/orders/{quote(ref, safe='/')}?done={done}"


@dataclass(frozen=True, kw_only=True)
class OperatorActions:
    """The action routes, sending through the auditor's publisher."""

    publisher: Publisher
    js: JetStreamContext
    subjects: SubjectMap

    def routes(self) -> list[web.RouteDef]:
        return [
            *(
                web.post(f"{ACTIONS}/{kind.slug}", self._order_action(kind))
                for kind in ORDER_ACTION_KINDS
            ),
            web.post(RESOLVE_PATH, self.resolve),
            web.post(REPLAY_PATH, self.replay),
            # The odoo-gateway runs the sync and applies the adjustment, the orchestrator
            # retries the return's step: each once per action.
            web.post(
                SYNC_PRODUCTS_PATH,
                self._page_action(
                    SyncProductsForm,
                    lambda form, who, note: StartProductSync(
                        action_id=form.action_id, operator=who, note=note
                    ),
                    "/tower/product-syncs?done=sync-products",
                ),
            ),
            web.post(
                APPROVE_ADJUSTMENT_PATH,
                self._page_action(
                    ApproveAdjustmentForm,
                    lambda form, who, note: ApproveInventoryAdjustment(
                        action_id=form.action_id, operator=who, reference=form.reference, note=note
                    ),
                    "/tower/adjustments?done=approve-adjustment",
                ),
            ),
            web.post(
                RETRY_RETURN_PATH,
                self._page_action(
                    RetryReturnForm,
                    lambda form, who, note: RetryReturnStep(
                        action_id=form.action_id, operator=who, return_id=form.return_id, note=note
                    ),
                    "/tower/returns?done=retry-return-step",
                ),
            ),
        ]

    def _page_action(
        self,
        form_type: type[F],
        command_of: Callable[[F, str, str | None], OperatorCommand],
        back_to: str,
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A page's form that sends one command in the operator's name, then shows the page."""

        async def handler(request: web.Request) -> web.Response:
            form = await _form(request, form_type)
            note = form.note.strip() or None
            await self._send(command_of(form, principal_of(request).subject, note))
            raise web.HTTPSeeOther(back_to)

        return handler

    async def _send(self, command: OperatorCommand) -> None:
        # The action's id is the message's fact id: a form sent twice is one message.
        await self.publisher.publish(command, fact_id=f"operator-action:{command.action_id}")

    def _order_action(self, kind: OrderActionKind) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            form = await _form(request, OrderActionForm)
            command = kind.command(
                action_id=form.action_id,
                operator=principal_of(request).subject,
                order_ref=form.order_ref,
                note=form.note.strip() or None,
            )
            await self._send(command)
            raise web.HTTPSeeOther(_order_page(form.order_ref, kind.slug))

        return handler

    async def resolve(self, request: web.Request) -> web.Response:
        """Resolve an open exception of an order, with a note."""
        form = await _form(request, ResolveForm)
        if not form.note.strip():
            raise _bad("note", "say what was done")
        await self._send(
            ResolveException(
                action_id=form.action_id,
                operator=principal_of(request).subject,
                order_ref=form.order_ref,
                exception_id=form.exception_id,
                note=form.note.strip(),
            )
        )
        raise web.HTTPSeeOther(_order_page(form.order_ref, "resolve-exception"))

    async def replay(self, request: web.Request) -> web.Response:
        """Replay a dead letter in the operator's name (the auditor does it, now)."""
        form = await _form(request, ReplayForm)
        operator = principal_of(request).subject
        try:
            outcome = await replay_for_operator(
                self.js, self.subjects, form.dlq_sequence, operator=operator
            )
        except ReplayRefused as refused:
            raise ProblemError(
                409, "Conflict", f"dead letter {form.dlq_sequence} is not replayed: {refused}"
            ) from None
        except (nats.errors.Error, OSError) as error:
            raise ProblemError(
                503,
                "Service Unavailable",
                f"NATS did not take the replay ({type(error).__name__}); try again",
                headers={"Retry-After": "5"},
            ) from None
        if outcome is Replayed.GONE:
            raise ProblemError(
                404,
                "Not Found",
                f"dead letter {form.dlq_sequence} is not in the stream (replayed already?)",
            )
        target = (
            _order_page(form.order_ref, "replay-dead-letter")
            if form.order_ref
            else "/tower/dead-letters?done=replay-dead-letter"
        )
        raise web.HTTPSeeOther(target)
