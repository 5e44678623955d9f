"""The auditor service: every event, command and dead letter into the audit trail; the API.

It also turns JetStream's max-deliveries and terminated advisories into dead
letters (:mod:`waybill_runtime.bus.advisories`): it watches everything
already, so no message leaves a stream unrecorded while it runs.

``service`` is what `waybill run auditor` runs; :func:`build_service` makes
another, independent declaration (tests start one per case).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from waybill_auditor.api import AuditApi, DeadLettersQuery, OrdersQuery
from waybill_auditor.config import AuditorSettings
from waybill_auditor.coverage import ConsumerCoverage
from waybill_auditor.records import dead_letter_record, message_record
from waybill_auditor.retention import retention_sweeper
from waybill_auditor.store import Change, store_for
from waybill_auditor.tower.actions import (
    ACTIONS,
    APPROVE_ADJUSTMENT_PATH,
    ORDER_ACTION_KINDS,
    REPLAY_PATH,
    RESOLVE_PATH,
    RETRY_RETURN_PATH,
    SYNC_PRODUCTS_PATH,
    ApproveAdjustmentForm,
    OperatorActions,
    OrderActionForm,
    ReplayForm,
    ResolveForm,
    RetryReturnForm,
    SyncProductsForm,
)
from waybill_auditor.tower.pages import PREFIX, ControlTower
from waybill_auditor.tower.signin import (
    SIGN_IN,
    SIGN_OUT,
    SignInForm,
    SignOutForm,
    sign_in_routes,
)
from waybill_auditor.trail import TRAIL, AuditTrail, DatabaseWritable
from waybill_auditor.views import DeadLettersPage, OrdersPage, Timeline
from waybill_contracts import MESSAGE_TYPES, Lane, Message, MessageKind
from waybill_contracts.events import InventoryReconciled, PartnerCircuitChanged
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.bus.dead_letters import StoredDeadLetter
from waybill_runtime.bus.replay import replay_mark
from waybill_runtime.declaration import Route
from waybill_runtime.http import ReadinessCheck
from waybill_runtime.service import ResourceKey, Runtime, Service

NAME = "auditor"

COVERAGE = ResourceKey[ConsumerCoverage]("consumer-coverage")

AUDITED_TYPES: tuple[type[Message], ...] = tuple(
    t for t in MESSAGE_TYPES if t.kind in (MessageKind.EVENT, MessageKind.COMMAND)
)
"""Every event and command type of the contracts: the auditor sees them all."""


async def on_message(message: Message, ctx: HandlerContext[AuditorSettings]) -> None:
    """Record one event or command (once, however often it is delivered)."""
    record = message_record(
        message,
        ctx.envelope,
        subjects=ctx.runtime.subjects,
        nats_subject=ctx.subject,
        stream_sequence=ctx.stream_sequence,
        replay=replay_mark(ctx.headers),
        unconsumed=not await ctx.resource(COVERAGE).consumed(ctx.subject),
    )
    await ctx.resource(TRAIL).record(record)


@contextlib.asynccontextmanager
async def open_audit_trail(runtime: Runtime[AuditorSettings]) -> AsyncIterator[AuditTrail]:
    """The audit store of the running service, with its counts loaded; closed on stop."""
    trails: list[AuditTrail] = []

    def changed(change: Change) -> None:
        # The store may tell of rows before the trail exists (PostgreSQL listens
        # from its start); the counts loaded right after include those rows.
        for trail in trails:
            trail.changed(change)

    store = store_for(runtime.settings, on_change=changed)
    await store.open()
    try:
        trail = AuditTrail(store, runtime.metrics)
        await trail.load_counts()
        trails.append(trail)
        yield trail
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def open_coverage(runtime: Runtime[AuditorSettings]) -> AsyncIterator[ConsumerCoverage]:
    """What the other services' durable consumers take (the auditor's own do not count)."""
    service = runtime.settings.service
    own = frozenset(
        runtime.subjects.durable(service, purpose) for purpose in ("events", "commands")
    )
    # Breaker news and reconciliation reports are for the control tower: the auditor is
    # their consumer.
    read_here = frozenset(
        runtime.subjects.on_lane(runtime.subjects.subject_for(kind), lane)
        for kind in (PartnerCircuitChanged, InventoryReconciled)
        for lane in Lane
    )
    yield ConsumerCoverage(runtime.js, runtime.subjects, own=own, read_here=read_here)


# Reading the trail (customers' names and addresses among it) needs a viewer's token.
ROUTES = (
    Route(
        "GET",
        "/orders/{ref:.+}/timeline",
        "operator",
        "an order's timeline",
        response=Timeline,
        role="viewer",
    ),
    Route(
        "GET",
        "/orders",
        "operator",
        "orders by stage; stuck ones",
        response=OrdersPage,
        query=OrdersQuery,
        role="viewer",
    ),
    Route(
        "GET",
        "/dead-letters",
        "operator",
        "dead letters, newest first",
        response=DeadLettersPage,
        query=DeadLettersQuery,
        role="viewer",
    ),
)


def _page(path: str, summary: str) -> Route:
    """A page of the control tower: HTML for viewers; a browser without a token signs in."""
    return Route(
        "GET", path, "operator", summary, answers="text/html", role="viewer", sign_in=SIGN_IN
    )


# The operator actions: forms posted from the pages, each sending one command.
def _action(path: str, summary: str, form: type[msgspec.Struct]) -> Route:
    """An operator action: a form post that sends one command; operators only."""
    return Route("POST", path, "operator", summary, request=form, role="operator", form=True)


# The control tower's pages: people at a browser (viewers read; operators act, see actions).
TOWER_ROUTES = (
    _page(PREFIX, "the control tower"),
    _page(f"{PREFIX}/stuck", "stuck orders"),
    _page(PREFIX + "/orders/{ref:.+}", "an order's page"),
    _page(f"{PREFIX}/dead-letters", "dead letters"),
    _page(f"{PREFIX}/partners", "partner health"),
    _page(PREFIX + "/partners/{slug}", "one partner"),
    _page(f"{PREFIX}/returns", "customers' returns and where each stands"),
    _page(f"{PREFIX}/adjustments", "warehouse stock adjustments: held and applied"),
    _page(f"{PREFIX}/product-syncs", "product master sync runs"),
    Route(
        "GET",
        PREFIX + "/product-syncs/{batch}/report.{format}",
        "operator",
        "a product sync run's report: every product it could not sync, as CSV or JSON",
        answers="text/csv",
        role="viewer",
    ),
    Route(
        "GET",
        PREFIX + "/reconciliations/{run}/report.{format}",
        "operator",
        "an inventory reconciliation's discrepancies, as CSV or JSON",
        answers="text/csv",
        role="viewer",
    ),
    _page(f"{PREFIX}/search", "search orders"),
    Route(
        "GET",
        f"{PREFIX}/live",
        "operator",
        "live updates (server-sent events)",
        answers="text/event-stream",
        role="viewer",
    ),
    Route(
        "GET",
        PREFIX + "/static/{name}",
        "public",
        "the stylesheet and script",
        answers="text/plain",
    ),
    *(
        _action(f"{ACTIONS}/{kind.slug}", kind.label.lower(), OrderActionForm)
        for kind in ORDER_ACTION_KINDS
    ),
    _action(RESOLVE_PATH, "resolve an exception", ResolveForm),
    _action(REPLAY_PATH, "replay a dead letter", ReplayForm),
    _action(SYNC_PRODUCTS_PATH, "run a product sync now", SyncProductsForm),
    _action(APPROVE_ADJUSTMENT_PATH, "apply a held stock adjustment", ApproveAdjustmentForm),
    _action(RETRY_RETURN_PATH, "retry a return's step", RetryReturnForm),
    Route("GET", SIGN_IN, "public", "the local sign-in page", answers="text/html"),
    Route("POST", SIGN_IN, "public", "sign in with a pasted token", request=SignInForm, form=True),
    Route("POST", SIGN_OUT, "public", "sign out", request=SignOutForm, form=True),
)


def build_service() -> Service[AuditorSettings]:
    """A new auditor declaration (run it with ``.main`` or ``.serve``)."""
    service = Service(
        NAME,
        settings_type=AuditorSettings,
        description="The audit trail: every event, command and dead letter; orders' stages",
        routes=ROUTES + TOWER_ROUTES,
        # It reads the whole streams (a message on a subject the contracts do not
        # know is dead-lettered, "invalid message": reported, not left unread) and
        # records what no handler settled from JetStream's advisories.
        watches_mesh=True,
        # Operators replay dead letters from the control tower: the auditor does it.
        replays_dead_letters=True,
    )
    for message_type in AUDITED_TYPES:
        service.handles(message_type)(on_message)

    @service.handles_dead_letters
    async def on_dead_letter(stored: StoredDeadLetter, runtime: Runtime[AuditorSettings]) -> None:
        record = dead_letter_record(stored, subjects=runtime.subjects)
        await runtime.resource(TRAIL).record(record)

    service.resource(TRAIL)(open_audit_trail)
    service.resource(COVERAGE)(open_coverage)
    service.runs(retention_sweeper)

    def database_writable(runtime: Runtime[AuditorSettings]) -> ReadinessCheck:
        return DatabaseWritable(runtime.resource(TRAIL).store)

    service.readiness(database_writable)

    def api_routes(runtime: Runtime[AuditorSettings]) -> list[web.RouteDef]:
        settings = runtime.settings
        api = AuditApi(
            store=runtime.resource(TRAIL).store,
            deadlines=settings.deadlines(),
            mask=settings.mask_personal_data,
        )
        tower = ControlTower(
            store=runtime.resource(TRAIL).store,
            feed=runtime.resource(TRAIL).feed,
            subjects=runtime.subjects,
            deadlines=settings.deadlines(),
            product_sync_stuck_after_s=settings.product_sync_stuck_after_s,
            mask=settings.mask_personal_data,
            trace_url_template=settings.trace_url_template,
            js=runtime.js,
        )
        actions = OperatorActions(
            publisher=runtime.publisher, js=runtime.js, subjects=runtime.subjects
        )
        return [*api.routes(), *tower.routes(), *actions.routes(), *sign_in_routes()]

    service.routes(api_routes)

    return service


service = build_service()
main = service.main

if __name__ == "__main__":
    raise SystemExit(main())
