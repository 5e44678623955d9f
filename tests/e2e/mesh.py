"""The whole mesh in one test process: partner sandboxes and every Waybill service.

Sandboxes and services are wired exactly as `waybill up` wires them (the same
plan made from the declarations: `waybill_runtime.local.plan`), but run in-process
so the tests can inspect the sandboxes directly and stay fast. The services
are the real ones, on a real nats-server.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from nats.aio.client import Client as NatsClient

from waybill_contracts import Command, Event, Message, Service, SubjectMap
from waybill_runtime.local.plan import LocalPlan
from waybill_runtime.local.registry import installed_sandboxes, load_services
from waybill_runtime.security.local_api_keys import LocalApiKeys
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

# The carrier-router keeps under its carrier accounts' purchase limit (4 a second by
# default); the mesh's carriers have none (purchase_rate_per_s=0), so the router is set
# as for accounts with a generous limit, as the benchmark's stack sets it. At 4 a second
# a burst of orders waited on the router's own limiter and on nothing else.
CARRIER_ACCOUNTS: dict[str, dict[str, Any]] = {
    "carrier-router": {"carrier_purchase_rate_per_s": 1000.0, "carrier_purchase_burst": 64},
}


@dataclass
class Mesh:
    nc: NatsClient
    subjects: SubjectMap
    plan: LocalPlan
    odoo: OdooSandbox
    wms: WmsSandbox
    carrier_a: EasyPostSandbox
    carrier_b: ShippoSandbox
    mail: MailSandbox
    services: list[str] = field(default_factory=list)
    start_later: Callable[[str], Awaitable[None]] | None = None
    """Starts a service named in ``running_mesh(started_later=...)`` (once each)."""


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
    started_later: tuple[str, ...] = (),
    carrier_config: dict[str, Any] | None = None,
) -> AsyncIterator[Mesh]:
    """The sandboxes and ``services``; any also in ``started_later`` wait for ``mesh.start_later``.

    A service started later is in the plan from the start (its ports, its
    partners' sandboxes, its durables once it runs), so the messages for it
    pile up in its durables as in an outage: a backlog made on purpose.
    """
    # The same plan `waybill up` makes: ports, secrets, who posts webhooks where, the
    # API signing key (in the test's state folder, or a folder of the mesh's own).
    api_dir = contextlib.ExitStack()
    state_dir = tmp_state_dir or api_dir.enter_context(tempfile.TemporaryDirectory())
    plan = LocalPlan.make(
        load_services(list(services)),
        installed_sandboxes(),
        api_keys=LocalApiKeys.ensure(Path(state_dir)),
    )
    odoo_offer, wms_offer = plan.offered("odoo"), plan.offered("wms")
    odoo = OdooSandbox(
        OdooSettings(
            version=odoo_version,
            orders=0,
            webhook_url=plan.webhook_url("odoo"),
            admin_password=odoo_offer["password"],
            admin_api_key=odoo_offer["api_key"],
        )
    )
    wms = WmsSandbox(
        WmsConfig(
            api_key=wms_offer["api_key"],
            webhook_secret=wms_offer["webhook_secret"],
            webhook_url=plan.webhook_url("wms"),
            stage_delays_s={"accepted": 0.01, "picked": 0.01, "packed": 0.01, "shipped": 0.01},
            **(wms_config or {}),
        )
    )

    def carrier(partner: str) -> CarrierConfig:
        offer = plan.offered(partner)
        return CarrierConfig(
            api_key=offer["api_key"],
            webhook_secret=offer["webhook_secret"],
            webhook_url=plan.webhook_url(partner),
            purchase_rate_per_s=0,
            tracking_delays_s=list(tracking_delays_s),
            **(carrier_config or {}),
        )

    carrier_a = EasyPostSandbox(carrier("carrier-a"))
    carrier_b = ShippoSandbox(carrier("carrier-b"))
    mail = MailSandbox(
        smtp_port=int(plan.offered("smtp")["port"]),
        secret=plan.offered("webhook-receiver")["secret"],
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(api_dir)
        for app, url in (
            (odoo.app(), odoo_offer["url"]),
            (wms.app(), wms_offer["url"]),
            (carrier_a.app(), plan.offered("carrier-a")["url"]),
            (carrier_b.app(), plan.offered("carrier-b")["url"]),
            (mail.app(), plan.offered("webhook-receiver")["url"]),
        ):
            port = urlsplit(url).port
            assert port is not None
            await stack.enter_async_context(serve(app, port=port))

        async def start(name: str) -> None:
            settings: dict[str, Any] = {
                "retry_backoff_s": (0.2, 0.5, 1.0),
                **CARRIER_ACCOUNTS.get(name, {}),
                **plan.service_settings(name),
            }
            if tmp_state_dir is not None:
                settings["state_dir"] = tmp_state_dir
            settings.update((service_settings or {}).get(name, {}))
            await stack.enter_async_context(
                running_service(
                    plan.services[name], nats_url=nats_url, subject_prefix=prefix, **settings
                )
            )

        for name in plan.services:
            if name not in started_later:
                await start(name)
        yield Mesh(
            nc=nc,
            subjects=SubjectMap(prefix),
            plan=plan,
            odoo=odoo,
            wms=wms,
            carrier_a=carrier_a,
            carrier_b=carrier_b,
            mail=mail,
            services=list(services),
            start_later=start,
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


M = TypeVar("M", bound=Message)


async def events_of(nc: NatsClient, subjects: SubjectMap, kind: type[M]) -> list[M]:
    """Every stored event of ``kind``, oldest first."""
    found = await stored_in(nc, subjects, subjects.events_stream)
    return [d.message for d in found if isinstance(d.message, kind)]
