"""The WMS sandbox: a warehouse, its lifecycle, its webhooks and its faults, as one object."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from aiohttp import web

from waybill_sandboxes.delivery import DeliveryPolicy, SentWebhook, WebhookSender
from waybill_sandboxes.faults import Faults, install_faults
from waybill_sandboxes.signing import wms_signature_headers
from waybill_sandboxes.wms.admin import WmsAdmin
from waybill_sandboxes.wms.api import WmsApi
from waybill_sandboxes.wms.catalogue import Catalogue, CatalogueApi, CatalogueLimits
from waybill_sandboxes.wms.lifecycle import OrderLifecycle
from waybill_sandboxes.wms.records import OutboundOrder, OutboundOrderRequest, WmsEvent
from waybill_sandboxes.wms.returns_api import ReturnsApi
from waybill_sandboxes.wms.returns_dock import ReturnsDock
from waybill_sandboxes.wms.stock_api import StockApi
from waybill_sandboxes.wms.warehouse import Warehouse

__all__ = ["WmsConfig", "WmsSandbox"]


class WmsConfig(msgspec.Struct, kw_only=True):
    """Settings of one WMS sandbox."""

    api_key: str = "wms-sandbox-key"
    """Expected in the ``X-Api-Key`` header of every API call."""
    webhook_url: str | None = None
    """Where lifecycle and inventory webhooks go (None: recorded, not sent)."""
    webhook_secret: str = "wms-sandbox-secret"
    """HMAC key of ``X-WMS-Signature``."""
    warehouse: str = "WH1"
    stage_delays_s: dict[str, float] = msgspec.field(default_factory=dict)
    """Delay before each stage (accepted, picked, packed, shipped); missing ones keep defaults."""
    short_pick_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    default_stock: Annotated[float, msgspec.Meta(ge=0)] = 1000.0
    units_per_parcel: Annotated[int, msgspec.Meta(ge=1)] = 10
    reject_returns: bool = False
    """Inspection judges every returned unit damaged (unless a return has its own plan)."""
    delivery: DeliveryPolicy = msgspec.field(default_factory=DeliveryPolicy)
    catalogue: CatalogueLimits = msgspec.field(default_factory=CatalogueLimits)
    """Products per upsert call and upsert calls per second (the catalogue API)."""
    seed: int | None = None


class WmsSandbox:
    """A stand-in warehouse system with a REST API and signed webhooks.

    Build the app with :meth:`app` (one app per sandbox object) and serve it
    with :func:`waybill_sandboxes.server.serve`. Everything it did can be
    read back here: ``warehouse.orders``, ``warehouse.cancellations``,
    ``warehouse.creations``, ``catalogue`` (products and how often each was
    sent), ``returns.returns``, :meth:`sent_webhooks`, :meth:`calls`.
    """

    def __init__(self, config: WmsConfig | None = None) -> None:
        self.config = config or WmsConfig()
        self.faults = Faults(seed=self.config.seed)
        self.warehouse = Warehouse(
            emit=self._emit,
            code=self.config.warehouse,
            default_stock=self.config.default_stock,
            short_pick_rate=self.config.short_pick_rate,
            units_per_parcel=self.config.units_per_parcel,
            seed=self.config.seed,
        )
        self.catalogue = Catalogue(self.warehouse.products)
        self.lifecycle = OrderLifecycle(self.warehouse, self.config.stage_delays_s)
        self.returns = ReturnsDock(
            warehouse=self.warehouse, emit=self._emit, reject_all=self.config.reject_returns
        )
        self.webhooks = WebhookSender(
            sign=lambda body: wms_signature_headers(self.config.webhook_secret, body),
            url=self.config.webhook_url,
            policy=self.config.delivery,
            seed=self.config.seed,
        )

    def app(self) -> web.Application:
        """The aiohttp app: REST API under ``/api/v1``, admin under ``/_sandbox``."""
        app = web.Application()
        install_faults(app, self.faults)
        api = WmsApi(self)
        app.middlewares.append(api.require_api_key)
        app.add_routes(api.routes())
        app.add_routes(CatalogueApi(self).routes())
        app.add_routes(ReturnsApi(self).routes())
        app.add_routes(StockApi(self).routes())
        app.add_routes(WmsAdmin(self).routes())
        app.cleanup_ctx.append(self._running)
        return app

    async def _running(self, app: web.Application) -> AsyncIterator[None]:
        await self.webhooks.start()
        yield
        await self.lifecycle.close()
        await self.webhooks.close()

    def create_order(self, request: OutboundOrderRequest) -> tuple[OutboundOrder, bool]:
        """Create (or replay) an order and start its lifecycle; ``(order, created)``."""
        order, created = self.warehouse.create_order(request)
        if created:
            self.lifecycle.start(order.order_id)
        return order, created

    def calls(self) -> dict[str, int]:
        """API calls per operation (route name), faulted or not."""
        return self.faults.calls()

    def sent_webhooks(self, event_type: str | None = None) -> list[SentWebhook]:
        """Webhooks handed to delivery, optionally of one type, oldest first."""
        return [r for r in self.webhooks.records if event_type in (None, r.event_type)]

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until no order is moving and every webhook has an outcome."""
        await self.lifecycle.idle(timeout_s)
        await self.webhooks.drain(timeout_s)

    def _emit(self, event_type: str, data: Any) -> None:
        event = WmsEvent(
            event_id=f"evt_{uuid.uuid4().hex}",
            event_type=event_type,
            occurred_at=self.warehouse.now(),
            warehouse=self.warehouse.code,
            data=data,
        )
        # Encoded now, so the body is a snapshot of the order at this stage.
        self.webhooks.enqueue(event.event_id, event_type, msgspec.json.encode(event))
