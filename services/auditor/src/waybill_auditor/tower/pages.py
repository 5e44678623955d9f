"""The control tower's pages: overview, stuck orders, an order, dead letters, partners, search.

Each handler reads the audit trail, turns rows into the JSON API's masked
views (:mod:`waybill_auditor.views`) and renders a template. Query
parameters are checked like the API's: a bad one is a 400 problem naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from aiohttp import web
from nats.js.client import JetStreamContext

from waybill_auditor.api import parse_flag, recorded_timeline, utc_now
from waybill_auditor.breakers import breaker_states, of_service
from waybill_auditor.causal import causal_order
from waybill_auditor.held_adjustments import adjustments
from waybill_auditor.insight import (
    MAX_QUERY,
    counts_by_type,
    latest_troubles,
    partner_figures,
    search_orders,
    stage_counts,
)
from waybill_auditor.partners import BY_SLUG, PARTNERS
from waybill_auditor.product_syncs import (
    ProductSyncRun,
    product_sync_runs,
    product_syncs_under_way,
    report_csv,
)
from waybill_auditor.reports import report_response
from waybill_auditor.returns_view import latest_returns
from waybill_auditor.stages import Stage
from waybill_auditor.stock_reports import latest_reconciliations, reconciliation_csv
from waybill_auditor.store import AuditStore, OrderRow, OrdersFilter
from waybill_auditor.tower.actions import ACTION_SLUGS as DONE
from waybill_auditor.tower.actions import (
    APPROVE_ADJUSTMENT_PATH,
    RETRY_RETURN_PATH,
    SYNC_PRODUCTS_PATH,
    new_action_id,
    order_actions,
)
from waybill_auditor.tower.lag import consumer_lag
from waybill_auditor.tower.live import LiveFeed, event_stream
from waybill_auditor.tower.render import page
from waybill_auditor.views import OrderView, dead_letter_view, order_view, timeline_entry
from waybill_contracts import SubjectMap
from waybill_contracts.commands import BookShipment
from waybill_contracts.events import (
    DeliveryRecordedInOdoo,
    ExceptionRaised,
    OrderReleased,
    ShipmentRecordedInOdoo,
)
from waybill_runtime.http import ProblemError
from waybill_runtime.personal_data import mask_text

PREFIX = "/tower"
STUCK_ON_OVERVIEW = 10
LETTERS_ON_OVERVIEW = 10
RECONCILIATIONS_ON_OVERVIEW = 5
PAGE_SIZE = 200
PRODUCT_SYNCS_SHOWN = 50
APPLIED_ADJUSTMENTS_SHOWN = 50
RETURNS_SHOWN = 200
ASSETS = {"tower.css": "text/css", "tower.js": "text/javascript"}


def _bad(parameter: str, detail: str) -> ProblemError:
    return ProblemError(
        400, "Bad Request", detail, invalid_params=[{"name": parameter, "reason": detail}]
    )


def _query(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise _bad(unknown[0], f"unknown query parameter {unknown[0]!r}")
    single: dict[str, str] = {}
    for name in request.query:
        values = request.query.getall(name)
        if len(values) > 1:
            raise _bad(name, f"{name} is given {len(values)} times: give it once")
        single[name] = values[0]
    return single


def _done(asked: Mapping[str, str]) -> str | None:
    # Which action was just sent (after the redirect of its form), for the notice.
    done = asked.get("done")
    if done is not None and done not in DONE:
        raise _bad("done", f"done is one of {', '.join(sorted(DONE))}")
    return done


@dataclass(frozen=True, kw_only=True)
class ControlTower:
    """The pages, bound to one audit store and the auditor's settings."""

    store: AuditStore
    feed: LiveFeed
    subjects: SubjectMap
    deadlines: Mapping[Stage, float]
    product_sync_stuck_after_s: float = 1800.0
    mask: bool = True
    trace_url_template: str | None = None
    js: JetStreamContext | None = None
    clock: Callable[[], datetime] = utc_now

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.overview),
            web.get(f"{PREFIX}/stuck", self.stuck),
            web.get(PREFIX + "/orders/{ref:.+}", self.order),
            web.get(f"{PREFIX}/dead-letters", self.dead_letters),
            web.get(f"{PREFIX}/partners", self.partners),
            web.get(PREFIX + "/partners/{slug}", self.partner),
            web.get(f"{PREFIX}/returns", self.returns),
            web.get(f"{PREFIX}/adjustments", self.adjustments),
            web.get(f"{PREFIX}/product-syncs", self.product_syncs),
            web.get(PREFIX + "/product-syncs/{batch}/report.{format}", self.product_sync_report),
            web.get(PREFIX + "/reconciliations/{run}/report.{format}", self.reconciliation_report),
            web.get(f"{PREFIX}/search", self.search),
            web.get(f"{PREFIX}/live", self.live),
            web.get(PREFIX + "/static/{name}", self.asset),
        ]

    def _view(self, row: OrderRow, now: datetime) -> OrderView:
        return order_view(row, deadlines=self.deadlines, now=now)

    def _mask(self, text: str) -> str:
        return mask_text(text) if self.mask else text

    async def _stuck_rows(self, now: datetime, limit: int) -> list[OrderRow]:
        chosen = OrdersFilter(stuck_only=True, limit=limit)
        return (await self.store.orders(chosen, deadlines=self.deadlines, now=now))[:limit]

    async def _with_reasons(self, rows: list[OrderRow], now: datetime) -> list[dict[str, Any]]:
        troubles = await latest_troubles(
            self.store,
            [row.order_ref for row in rows],
            exception_type=self.subjects.ce_type_for(ExceptionRaised),
        )
        listed = []
        for row in rows:
            view = self._view(row, now)
            trouble = troubles.get(row.order_ref)
            age = (now - row.since).total_seconds()
            reason = f"in {row.stage.value} for longer than its deadline"
            if trouble is not None:
                reason = self._mask(trouble.text)
            listed.append({"order": view, "age_s": age, "reason": reason})
        return listed

    async def overview(self, request: web.Request) -> web.Response:
        """Stages, throughput, stuck orders, dead letters, partners and their breakers, lag,
        the latest inventory reconciliations."""
        _query(request, frozenset())
        now = self.clock()
        hour, day = now - timedelta(hours=1), now - timedelta(days=1)
        milestones = {
            "released": self.subjects.ce_type_for(OrderReleased),
            "booked": self.subjects.ce_type_for(BookShipment),
            "shipped": self.subjects.ce_type_for(ShipmentRecordedInOdoo),
            "delivered": self.subjects.ce_type_for(DeliveryRecordedInOdoo),
        }
        last_hour = await counts_by_type(self.store, list(milestones.values()), since=hour)
        last_day = await counts_by_type(self.store, list(milestones.values()), since=day)
        letters = await self.store.dead_letters(limit=LETTERS_ON_OVERVIEW)
        breakers = await breaker_states(self.store, self.subjects)
        return page(
            request,
            "overview.html",
            {
                "title": "Overview",
                "now": now,
                "stages": await stage_counts(self.store),
                "deadlines": self.deadlines,
                "throughput": [(name, last_hour[t], last_day[t]) for name, t in milestones.items()],
                "stuck": await self._with_reasons(
                    await self._stuck_rows(now, STUCK_ON_OVERVIEW), now
                ),
                "letters": [
                    dead_letter_view(m, mask=self.mask) for m in letters[:LETTERS_ON_OVERVIEW]
                ],
                "partners": [
                    (
                        p,
                        await partner_figures(self.store, p, self.subjects, since=hour),
                        of_service(breakers, p.service.value),
                    )
                    for p in PARTNERS
                ],
                "lag": await consumer_lag(self.js, self.subjects) if self.js else None,
                "reconciliations": await latest_reconciliations(
                    self.store, self.subjects, RECONCILIATIONS_ON_OVERVIEW
                ),
            },
        )

    async def stuck(self, request: web.Request) -> web.Response:
        """Every order past its stage's deadline, longest first, with the latest trouble."""
        _query(request, frozenset())
        now = self.clock()
        return page(
            request,
            "stuck.html",
            {
                "title": "Stuck orders",
                "now": now,
                "stuck": await self._with_reasons(await self._stuck_rows(now, PAGE_SIZE), now),
            },
        )

    async def order(self, request: web.Request) -> web.Response:
        """One order: stage, actions, the whole timeline, its dead letters."""
        asked = _query(request, frozenset({"done"}))
        ref = request.match_info["ref"]
        row, messages, letters = await recorded_timeline(self.store, ref)
        now = self.clock()
        ordered = causal_order(messages)
        entries = [timeline_entry(m, mask=self.mask) for m in ordered]
        trace_id = next((m.trace_id for m in ordered if m.trace_id), None)
        trace_url = (
            self.trace_url_template.replace("{trace_id}", trace_id)
            if self.trace_url_template and trace_id
            else None
        )
        view = self._view(row, now) if row is not None else None
        return page(
            request,
            "order.html",
            {
                "title": f"Order {ref}",
                "now": now,
                "ref": ref,
                "order": view,
                "entries": entries,
                "known_ids": {e.id for e in entries},
                "letters": [dead_letter_view(m, mask=self.mask) for m in letters],
                "trace_id": trace_id,
                "trace_url": trace_url,
                "actions": order_actions(view, entries, self.subjects),
                "done": _done(asked),
            },
        )

    async def dead_letters(self, request: web.Request) -> web.Response:
        """Dead letters, newest first; of one service with ``?service=``."""
        asked = _query(request, frozenset({"service", "done"}))
        service = asked.get("service") or None
        if service is not None and len(service) > 64:
            raise _bad("service", "service is not a service name (64 characters at most)")
        rows = await self.store.dead_letters(service=service, limit=PAGE_SIZE)
        return page(
            request,
            "dead_letters.html",
            {
                "title": "Dead letters",
                "now": self.clock(),
                "service": service,
                "letters": [dead_letter_view(m, mask=self.mask) for m in rows[:PAGE_SIZE]],
                "more": len(rows) > PAGE_SIZE,
                "done": _done(asked),
            },
        )

    async def partners(self, request: web.Request) -> web.Response:
        """Every partner's figures over the last hour and day."""
        _query(request, frozenset())
        now = self.clock()
        rows = []
        breakers = await breaker_states(self.store, self.subjects)
        for partner in PARTNERS:
            hour = await partner_figures(
                self.store, partner, self.subjects, since=now - timedelta(hours=1)
            )
            day = await partner_figures(
                self.store, partner, self.subjects, since=now - timedelta(days=1)
            )
            rows.append((partner, hour, day, of_service(breakers, partner.service.value)))
        return page(request, "partners.html", {"title": "Partners", "now": now, "rows": rows})

    async def partner(self, request: web.Request) -> web.Response:
        """One partner: its figures, its service's breakers and latest dead letters."""
        _query(request, frozenset())
        slug = request.match_info["slug"]
        partner = BY_SLUG.get(slug)
        if partner is None:
            raise ProblemError(
                404,
                "Not Found",
                f"no partner {slug!r}: the partners are {', '.join(BY_SLUG)}",
            )
        now = self.clock()
        letters = await self.store.dead_letters(service=partner.service.value, limit=50)
        return page(
            request,
            "partner.html",
            {
                "title": partner.name,
                "now": now,
                "partner": partner,
                "hour": await partner_figures(
                    self.store, partner, self.subjects, since=now - timedelta(hours=1)
                ),
                "day": await partner_figures(
                    self.store, partner, self.subjects, since=now - timedelta(days=1)
                ),
                "letters": [dead_letter_view(m, mask=self.mask) for m in letters[:50]],
                "breakers": of_service(
                    await breaker_states(self.store, self.subjects), partner.service.value
                ),
            },
        )

    async def returns(self, request: web.Request) -> web.Response:
        """Customers' returns, where each stands; operators may retry a return's step."""
        asked = _query(request, frozenset({"done"}))
        found = await latest_returns(self.store, self.subjects, limit=RETURNS_SHOWN)
        return page(
            request,
            "returns.html",
            {
                "title": "Returns",
                "now": self.clock(),
                "returns": found,
                "retry_path": RETRY_RETURN_PATH,
                "action_ids": {r.return_id: new_action_id() for r in found},
                "done": _done(asked),
            },
        )

    async def adjustments(self, request: web.Request) -> web.Response:
        """Warehouse stock adjustments waiting for approval (operators approve), and applied."""
        asked = _query(request, frozenset({"done"}))
        found = await adjustments(self.store, self.subjects, applied=APPLIED_ADJUSTMENTS_SHOWN)
        return page(
            request,
            "adjustments.html",
            {
                "title": "Stock adjustments",
                "now": self.clock(),
                "waiting": found.waiting,
                "applied": found.applied,
                "approve_path": APPROVE_ADJUSTMENT_PATH,
                "action_ids": {held.reference: new_action_id() for held in found.waiting},
                "done": _done(asked),
            },
        )

    async def product_syncs(self, request: web.Request) -> web.Response:
        """The latest product master runs, and (for operators) a run started now."""
        asked = _query(request, frozenset({"done"}))
        now = self.clock()
        runs = await product_sync_runs(self.store, self.subjects, limit=PRODUCT_SYNCS_SHOWN)
        under_way = await product_syncs_under_way(
            self.store, self.subjects, stuck_after_s=self.product_sync_stuck_after_s, now=now
        )
        return page(
            request,
            "product_syncs.html",
            {
                "title": "Product syncs",
                "now": now,
                "under_way": under_way,
                "stuck_after_s": self.product_sync_stuck_after_s,
                "prefix": PREFIX,
                "runs": runs,
                "sync_path": SYNC_PRODUCTS_PATH,
                "action_id": new_action_id(),
                "done": _done(asked),
            },
        )

    async def product_sync_report(self, request: web.Request) -> web.Response:
        """One run's report: every product it could not sync and why, as CSV or JSON."""
        _query(request, frozenset())
        batch, format_ = request.match_info["batch"], request.match_info["format"]
        run = await self._product_sync_run(batch)
        return report_response(format_, batch, run, lambda: report_csv(run))

    async def reconciliation_report(self, request: web.Request) -> web.Response:
        """One inventory reconciliation's discrepancies, as CSV or JSON."""
        _query(request, frozenset())
        wanted, format_ = request.match_info["run"], request.match_info["format"]
        # Runs are few (one a night): looked up among all the latest.
        views = await latest_reconciliations(self.store, self.subjects, 2**31)
        found = next((v for v in views if v.reconciliation_id == wanted), None)
        if found is None:
            raise ProblemError(404, "Not Found", f"no inventory reconciliation {wanted!r}")
        return report_response(format_, wanted, found, lambda: reconciliation_csv(found))

    async def _product_sync_run(self, batch: str) -> ProductSyncRun:
        # Runs are few (one a night, say): the report is looked up among all the latest.
        for run in await product_sync_runs(self.store, self.subjects, limit=2**31):
            if run.batch_id == batch:
                return run
        raise ProblemError(404, "Not Found", f"no finished product sync run {batch!r}")

    async def search(self, request: web.Request) -> web.Response:
        """Orders by ref (any part), customer reference or tracking number (exact)."""
        asked = _query(request, frozenset({"q", "go"}))
        text = asked.get("q", "").strip()
        if len(text) > MAX_QUERY:
            raise _bad("q", f"q is longer than {MAX_QUERY} characters")
        go = parse_flag("go", asked.get("go"))
        now = self.clock()
        found = await search_orders(self.store, text) if text else []
        if go and len(found) == 1:
            raise web.HTTPSeeOther(f"{PREFIX}/orders/{found[0].order_ref}")
        return page(
            request,
            "search.html",
            {
                "title": "Search",
                "now": now,
                "q": text,
                "found": [self._view(row, now) for row in found],
            },
        )

    async def live(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: one per new row of the audit trail."""
        _query(request, frozenset())
        return await event_stream(request, self.feed)

    async def asset(self, request: web.Request) -> web.Response:
        """The stylesheet and the script (the same for everyone; nothing secret)."""
        name = request.match_info["name"]
        content_type = ASSETS.get(name)
        if content_type is None:
            raise ProblemError(404, "Not Found", f"no asset {name!r}")
        body = resources.files("waybill_auditor.tower").joinpath("static", name).read_bytes()
        return web.Response(
            body=body, content_type=content_type, headers={"Cache-Control": "max-age=300"}
        )
