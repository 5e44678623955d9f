"""``POST /webhooks/wms``: the WMS's signed lifecycle and inventory webhooks, as events.

A body not declared JSON is answered 415, an empty one or one nested absurdly
deep 400, before anything else. The WMS signs ``"{X-WMS-Timestamp}.{raw body}"``
with HMAC-SHA256 (lower-case hex in ``X-WMS-Signature``). A missing, wrong or
tampered signature, or a timestamp outside the tolerance (a replay), is
answered 401. A body that is not JSON is 400, one of the wrong shape 422. Each
refusal is logged in one line by the runtime. Every order event
carries the order as it is now, which is mapped to the facts of every stage it
reached (see :mod:`waybill_wms_bridge.lifecycle`); repeats, reordering and
overlaps with the poll all end as one stored event per fact. When the facts
cannot be stored right now (NATS unreachable) the answer is 503, so the WMS
sends the webhook again; the reconciliation poll is the last resort.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import msgspec
from aiohttp import web

from waybill_contracts import ContractError
from waybill_runtime.http import ProblemError, decode_json, json_answer, read_json_body
from waybill_runtime.outcomes import is_transient
from waybill_runtime.signatures import SignatureError, check_timestamp, verify_hmac_sha256
from waybill_wms_bridge.expected_returns import return_facts
from waybill_wms_bridge.ledger import FactLedger
from waybill_wms_bridge.lifecycle import (
    UnmappableWmsData,
    WarehouseFact,
    inventory_fact,
    order_facts,
)
from waybill_wms_bridge.products import UnitCodes
from waybill_wms_bridge.return_wire import WmsReturn
from waybill_wms_bridge.settled import SettledOrders
from waybill_wms_bridge.wms_wire import WmsInventoryAdjustment, WmsOrder, WmsWebhook

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WEBHOOK_PATH", "WmsWebhookReceiver"]

log = logging.getLogger("waybill.wms_bridge.webhooks")

D = TypeVar("D")

WEBHOOK_PATH = "/webhooks/wms"
TIMESTAMP_HEADER = "X-WMS-Timestamp"
SIGNATURE_HEADER = "X-WMS-Signature"
_ORDER_EVENTS = "order."
_INVENTORY_ADJUSTED = "inventory.adjusted"
_RETURN_EVENTS = "return."
# How long the WMS should wait before sending again when facts cannot be stored now.
_RETRY_AFTER_S = "5"


class WmsWebhookReceiver:
    """Checks, reads and records WMS webhooks."""

    def __init__(
        self,
        *,
        secret: str,
        tolerance_s: float,
        ledger: FactLedger,
        units: UnitCodes | None = None,
        settled: SettledOrders | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret.encode()
        # Order snapshots whose facts are all out: the poll passes them over.
        self._settled = settled or SettledOrders()
        self._units = units or UnitCodes({})
        self._tolerance_s = tolerance_s
        self._ledger = ledger
        self._clock = clock

    def routes(self) -> list[web.RouteDef]:
        """The webhook route for the service's HTTP server."""
        return [web.post(WEBHOOK_PATH, self.receive)]

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise :class:`SignatureError` unless the body is signed by the WMS, recently."""
        stamp = headers.get(TIMESTAMP_HEADER)
        check_timestamp(stamp, tolerance_s=self._tolerance_s, clock=self._clock)
        signed = f"{(stamp or '').strip()}.".encode() + body
        verify_hmac_sha256(self._secret, signed, headers.get(SIGNATURE_HEADER), encoding="hex")

    async def receive(self, request: web.Request) -> web.Response:
        """Handle one webhook: 202 when its facts are recorded (or it needs none)."""
        body = await read_json_body(request)
        try:
            self.verify(request.headers, body)
        except SignatureError as refused:
            raise ProblemError(
                401,
                "Unauthorized",
                f"the webhook is not signed by the WMS: {refused}",
                headers={"WWW-Authenticate": f'HMAC-SHA256 header="{SIGNATURE_HEADER}"'},
            ) from None
        hook = decode_json(body, WmsWebhook)
        if hook.event_type.startswith(_ORDER_EVENTS):
            order = _decode_data(hook, WmsOrder, "an outbound order")
            ref = order.client_order_ref
            # One order's webhooks one at a time: they come together (each repeating the
            # stages before its own), and each then maps and asks about only the stages
            # no webhook before it published, rather than all waiting on the same facts.
            async with self._settled.hold(ref):
                found = order_facts(order, self._settled.stages_out(ref))
                new = await self._publish(hook, found.facts)
                if found.problem is None:
                    self._settled.add(order)
            reported, problem = len(found.stages), found.problem
        else:
            facts, problem = self._other_facts(hook)
            new = await self._publish(hook, facts)
            reported = len(facts)
        if problem is not None:
            log.error(
                "WMS event %s (%s) only partly usable: %s", hook.event_id, hook.event_type, problem
            )
            raise ProblemError(422, "Unprocessable Content", problem, event_id=hook.event_id)
        return json_answer({"event_id": hook.event_id, "facts": reported, "new": new}, status=202)

    async def _publish(self, hook: WmsWebhook, facts: list[WarehouseFact]) -> int:
        """Publish the facts ``hook`` brings, oldest stage first; how many were new."""
        try:
            return await self._ledger.publish_all(facts)
        except ContractError as error:
            # The publisher refused a fact whose WMS values break the contract; the
            # facts before it are stored. Sending the webhook again cannot fix it.
            problem = f"the WMS data of {hook.event_type} is not valid: {error}"
            log.error("WMS event %s only partly usable: %s", hook.event_id, problem)
            raise ProblemError(
                422, "Unprocessable Content", problem, event_id=hook.event_id
            ) from None
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning(
                "could not record WMS event %s now (%s: %s); the WMS will send it again",
                hook.event_id,
                type(error).__name__,
                error,
            )
            raise ProblemError(
                503,
                "Service Unavailable",
                "the event could not be recorded right now: send it again later",
                headers={"Retry-After": _RETRY_AFTER_S},
            ) from None

    def _other_facts(self, hook: WmsWebhook) -> tuple[list[WarehouseFact], str | None]:
        """The facts a webhook not about an order reports, and what could not be mapped."""
        if hook.event_type.startswith(_RETURN_EVENTS):
            # return.received / return.inspected (a cancelled return reports nothing new:
            # Waybill called it off).
            found_return = _decode_data(hook, WmsReturn, "an expected return")
            try:
                return return_facts(found_return, self._units), None
            except (UnmappableWmsData, ValueError) as error:
                return [], str(error)
        if hook.event_type == _INVENTORY_ADJUSTED:
            adjustment = _decode_data(hook, WmsInventoryAdjustment, "an inventory adjustment")
            try:
                return [inventory_fact(hook.event_id, hook.warehouse, adjustment)], None
            except UnmappableWmsData as error:
                return [], str(error)
        # A newer WMS may announce more than Waybill knows; refusing would only make it retry.
        log.info("ignoring WMS event %s of unknown type %s", hook.event_id, hook.event_type)
        return [], None


def _decode_data(hook: WmsWebhook, shape: type[D], what: str) -> D:
    try:
        return msgspec.json.decode(hook.data, type=shape)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise ProblemError(
            422,
            "Unprocessable Content",
            f"the data of {hook.event_type} event {hook.event_id} is not {what}: {error}",
            event_id=hook.event_id,
        ) from None
