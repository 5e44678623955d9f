"""The whole mesh in one test process: partner sandboxes and every Waybill service.

Sandboxes and services are wired exactly as `waybill up` wires them (same
ports plan, same settings: `waybill_runtime.local.wiring`), but run in-process
so the tests can inspect the sandboxes directly and stay fast. The services
are the real ones, on a real nats-server.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NatsClient

from waybill_contracts import Command, Event, Service, SubjectMap
from waybill_runtime.local.wiring import LocalPorts, LocalSecrets, service_environment
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import stored_in
from waybill_sandboxes.carriers import CarrierConfig, EasyPostSandbox, ShippoSandbox
from waybill_sandboxes.mail import MailSandbox
from waybill_sandboxes.odoo import OdooSandbox, OdooSettings
from waybill_sandboxes.server import serve
from waybill_sandboxes.wms import WmsConfig, WmsSandbox

FLOW_SERVICES = ("odoo-gateway", "orchestrator", "wms-bridge", "carrier-router")
NOTIFY_SERVICES = ("notifier", "auditor")
ALL_SERVICES = FLOW_SERVICES + NOTIFY_SERVICES


def _service_object(name: str) -> Any:
    module = importlib.import_module(f"waybill_{name.replace('-', '_')}.app")
    return module.service


def settings_for(name: str, ports: LocalPorts, keys: LocalSecrets) -> dict[str, Any]:
    """The local stack's environment for ``name``, as settings overrides."""
    overrides: dict[str, Any] = {}
    for variable, value in service_environment(name, ports, keys).items():
        if variable in ("WAYBILL_SERVICE",):
            continue
        overrides[variable.removeprefix("WAYBILL_").lower()] = value
    return overrides


@dataclass
class Mesh:
    nc: NatsClient
    subjects: SubjectMap
    ports: LocalPorts
    keys: LocalSecrets
    odoo: OdooSandbox
    wms: WmsSandbox
    carrier_a: EasyPostSandbox
    carrier_b: ShippoSandbox
    mail: MailSandbox
    services: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_mesh(
    nc: NatsClient,
    nats_url: str,
    prefix: str,
    *,
    services: tuple[str, ...] = FLOW_SERVICES,
    odoo_version: int = 17,
    service_settings: dict[str, dict[str, Any]] | None = None,
    wms_config: dict[str, Any] | None = None,
    tracking_delays_s: tuple[float, float, float] = (0.05, 0.05, 0.05),
    tmp_state_dir: str | None = None,
) -> AsyncIterator[Mesh]:
    ports = LocalPorts.allocate(list(services))
    keys = LocalSecrets()
    local = "http://127.0.0.1"
    odoo = OdooSandbox(
        OdooSettings(
            version=odoo_version,
            orders=0,
            webhook_url=f"{local}:{ports.services.get('odoo-gateway', 1)}/webhooks/odoo/"
            f"{keys.odoo_webhook_token}",
        )
    )
    wms = WmsSandbox(
        WmsConfig(
            api_key=keys.wms_api_key,
            webhook_secret=keys.wms_webhook_secret,
            webhook_url=f"{local}:{ports.services.get('wms-bridge', 1)}/webhooks/wms",
            stage_delays_s={"accepted": 0.01, "picked": 0.01, "packed": 0.01, "shipped": 0.01},
            **(wms_config or {}),
        )
    )
    router = f"{local}:{ports.services.get('carrier-router', 1)}/webhooks/carriers"
    carrier_a = EasyPostSandbox(
        CarrierConfig(
            api_key=keys.carrier_a_api_key,
            webhook_secret=keys.carrier_a_webhook_secret,
            webhook_url=f"{router}/carrier-a",
            purchase_rate_per_s=0,
            tracking_delays_s=list(tracking_delays_s),
        )
    )
    carrier_b = ShippoSandbox(
        CarrierConfig(
            api_key=keys.carrier_b_api_key,
            webhook_secret=keys.carrier_b_webhook_secret,
            webhook_url=f"{router}/carrier-b",
            purchase_rate_per_s=0,
            tracking_delays_s=list(tracking_delays_s),
        )
    )
    mail = MailSandbox(smtp_port=ports.smtp, secret=keys.outbound_webhook_secret)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(serve(odoo.app(), port=ports.odoo))
        await stack.enter_async_context(serve(wms.app(), port=ports.wms))
        await stack.enter_async_context(serve(carrier_a.app(), port=ports.carrier_a))
        await stack.enter_async_context(serve(carrier_b.app(), port=ports.carrier_b))
        await stack.enter_async_context(serve(mail.app(), port=ports.mail_http))
        for name in services:
            settings = {"retry_backoff_s": (0.2, 0.5, 1.0), **settings_for(name, ports, keys)}
            if tmp_state_dir is not None:
                settings["state_dir"] = tmp_state_dir
            settings.update((service_settings or {}).get(name, {}))
            await stack.enter_async_context(
                running_service(
                    _service_object(name),
                    nats_url=nats_url,
                    subject_prefix=prefix,
                    **settings,
                )
            )
        yield Mesh(
            nc=nc,
            subjects=SubjectMap(prefix),
            ports=ports,
            keys=keys,
            odoo=odoo,
            wms=wms,
            carrier_a=carrier_a,
            carrier_b=carrier_b,
            mail=mail,
            services=list(services),
        )


async def undeclared_senders(nc: NatsClient, subjects: SubjectMap) -> list[str]:
    """Every stored command or event whose ``ce-source`` is not a declared sender or publisher.

    What the services really put on the bus, checked against the contracts'
    ``Command.senders`` and ``Event.publishers``: one line per offence.
    """
    found: list[str] = []
    for stream in (subjects.commands_stream, subjects.events_stream):
        for message, context in await stored_in(nc, subjects, stream):
            service = Service(context.source.removeprefix("waybill/"))
            declared: tuple[Service, ...] = ()
            if isinstance(message, Command):
                declared = message.senders
            elif isinstance(message, Event):
                declared = message.publishers
            if service not in declared:
                found.append(f"{service} sent {type(message).__name__}")
    return sorted(set(found))
