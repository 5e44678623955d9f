"""Tracking webhooks: ``POST /webhooks/carriers/<carrier>``, one route per carrier.

The body must be declared JSON (else 415) and nest at most a few dozen levels
(else 400) before anything reads it. Each carrier's own signature is checked
next (bad or missing → 401 problem); carrier A's, which has no timestamp, is
completed by its Event's id and creation time (see
:mod:`waybill_carrier_router.replay_guard`): a stale one is 401, one taken in
before is answered 200 ``duplicate`` and not acted on again.
The scans of the report move the shipment forward in time order, and each
step is published as ``MilestoneReached`` with an id derived from the scan
(tracking number, milestone, event time), so a repeated webhook adds nothing.
A tracking number the router did not book (yet) is answered 503 with
``Retry-After``: carriers retry, and the label's booking is usually a moment
away from being stored. So is an update that cannot be stored or published
right now (NATS unreachable): nothing is acknowledged that was not recorded.
"""

from __future__ import annotations

import logging

from aiohttp import web

from waybill_carrier_router.announcements import milestone_announcer
from waybill_carrier_router.carriers import BadTrackingPayload, TrackingWebhooks
from waybill_carrier_router.router import CarrierRouter
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.http import ProblemError, json_answer, read_json_body
from waybill_runtime.metrics import Children
from waybill_runtime.outcomes import is_transient
from waybill_runtime.signatures import SignatureError

__all__ = ["RETRY_AFTER_S", "tracking_routes"]

log = logging.getLogger("waybill.carrier_router.webhooks")

RETRY_AFTER_S = 5
"""Retry-After when an update cannot be taken now (unknown tracking number, NATS down)."""


def tracking_routes(router: CarrierRouter, publisher: Publisher) -> list[web.RouteDef]:
    """One webhook route per carrier."""
    webhooks = router.metrics.counter(
        "waybill_carrier_webhooks_total",
        "Tracking webhooks by carrier and outcome.",
        ("carrier", "outcome"),
    )

    announce = milestone_announcer(publisher)

    def receiver(carrier: str, hooks: TrackingWebhooks) -> web.RouteDef:
        # Each outcome's child looked up once (labels() on every webhook was about a
        # fifth of a webhook's own Python).
        outcomes = Children(webhooks, carrier)

        async def receive(request: web.Request) -> web.Response:
            try:
                body = await read_json_body(request)
            except ProblemError:
                outcomes("malformed").inc()
                raise
            try:
                hooks.verify(request.headers, body)
            except SignatureError as error:
                outcomes("rejected").inc()
                raise ProblemError(
                    401, detail=f"the {carrier} webhook signature is not valid: {error}"
                ) from None
            try:
                # The identity first: without it a replay could not be recognised.
                identity = hooks.identity(body)
                report = hooks.read(body)
            except BadTrackingPayload as error:
                outcomes("malformed").inc()
                raise ProblemError(400, detail=str(error)) from None
            if identity is not None:
                try:
                    router.replays.check_fresh(identity)
                except SignatureError as stale:
                    outcomes("rejected").inc()
                    raise ProblemError(
                        401, detail=f"the {carrier} webhook is refused: {stale}"
                    ) from None
            try:
                if identity is not None and await router.replays.taken_before(carrier, identity):
                    outcomes("duplicate").inc()
                    return json_answer({"status": "duplicate", "id": identity.id})
                if report is None:
                    outcomes("ignored").inc()
                    if identity is not None:
                        await router.replays.remember(carrier, identity)
                    return json_answer({"status": "ignored"})
                outcome = await router.tracking.record(carrier, report, announce)
                if outcome.known and identity is not None:
                    await router.replays.remember(carrier, identity)
            except Exception as error:
                if not is_transient(error):
                    raise
                outcomes("deferred").inc()
                log.warning("cannot record %s tracking now: %s", carrier, error)
                raise ProblemError(
                    503,
                    detail="the tracking update cannot be recorded right now; send it again",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                ) from None
            if not outcome.known:
                outcomes("unknown").inc()
                raise ProblemError(
                    503,
                    detail=f"tracking number {report.tracking_number} is not known to the "
                    f"carrier-router (yet); send it again later",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            if outcome.returning:
                outcomes("ignored").inc()
                return json_answer({"status": "ignored", "reason": "return label"})
            outcomes("accepted").inc()
            return json_answer(
                {
                    "status": "accepted",
                    "tracking_number": report.tracking_number,
                    "announced": [m.code.value for m in outcome.announced],
                }
            )

        return web.post(f"/webhooks/carriers/{carrier}", receive)

    return [receiver(carrier, hooks) for carrier, hooks in router.webhooks.items()]
