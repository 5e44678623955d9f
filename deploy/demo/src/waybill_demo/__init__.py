"""Waybill's local demo: what `waybill up` runs beside the stack (the ``waybill.demo`` entry point).

:data:`DEMO` is found by the runtime through the entry point; it is told the
stack's :class:`~waybill_runtime.local.plan.LocalPlan` and reads every URL
it needs from it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Collection
from datetime import timedelta
from pathlib import Path

import aiohttp

from waybill_demo.scenario import DemoEndpoints, DemoPlan, render_report, run_demo
from waybill_demo.trickle import trickle_orders
from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.plan import LocalPlan

__all__ = ["DEMO", "LocalDemo"]

FLOW_SERVICES = frozenset({"odoo-gateway", "orchestrator", "wms-bridge", "carrier-router"})
"""The services an order cannot ship without."""
SANDBOXES = frozenset({"odoo", "wms", "carriers"})
"""The sandboxes the demo drives through their admin APIs."""


class LocalDemo:
    """Demo orders for a running local stack, and the finite scenario that checks its outcome."""

    def check_possible(self, services: Collection[str], sandboxes: Collection[str]) -> None:
        """Refuse before anything starts when what the demo drives is not installed."""
        if not set(sandboxes) >= SANDBOXES:
            raise UserFacingError(
                "the demo drives the partner sandboxes, which are not installed: "
                "pip install -e deploy/sandboxes (make demo does)"
            )
        missing = FLOW_SERVICES - set(services)
        if missing:
            raise UserFacingError(
                f"the demo needs the services {', '.join(sorted(missing))}, which are not installed"
            )

    def trickle(self, plan: LocalPlan, every_s: float, stop: threading.Event) -> None:
        """Create a demo order every ``every_s`` seconds until ``stop`` (needs the Odoo sandbox)."""
        odoo = plan.offered("odoo").get("url")
        if odoo is not None:
            trickle_orders(odoo, every_s, stop)

    def run(
        self,
        plan: LocalPlan,
        nats_url: str,
        *,
        orders: int,
        timeout_s: float,
        log_dir: Path,
        nkey_seed_file: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> int:
        """The finite scenario; prints its report and returns the exit code (0: all arrived)."""
        endpoints = DemoEndpoints(
            odoo=plan.offered("odoo")["url"],
            wms=plan.offered("wms")["url"],
            carrier_a=plan.offered("carrier-a")["url"],
            nats_url=nats_url,
            nkey_seed_file=nkey_seed_file,
            tls=tls,
            mail=(
                f"http://{plan.host}:{plan.port('mail', 'http')}"
                if "notifier" in plan.services and "mail" in plan.sandboxes
                else None
            ),
            auditor=plan.service_url("auditor") if "auditor" in plan.services else None,
            auditor_token=(
                plan.api_keys.issue(
                    "viewer", subject="demo", ttl=timedelta(seconds=timeout_s + 600)
                ).token
                if plan.api_keys is not None
                else None
            ),
            gateway=plan.service_url("odoo-gateway"),
            # The shop's system asking for returns: an operator's token.
            operator_token=(
                plan.api_keys.issue(
                    "operator", subject="demo-shop", ttl=timedelta(seconds=timeout_s + 600)
                ).token
                if plan.api_keys is not None
                else None
            ),
        )
        scenario = DemoPlan.for_orders(orders, timeout_s=timeout_s)
        print(
            f"demo: {scenario.orders} orders, carrier A down for the first part of the run, "
            f"then {scenario.returns} of them returned",
            flush=True,
        )
        try:
            report = asyncio.run(run_demo(endpoints, scenario))
        except (RuntimeError, OSError, aiohttp.ClientError) as error:
            print(f"demo: failed: {error}; see the logs in {log_dir}", flush=True)
            return 1
        print(render_report(report), flush=True)
        complete = (
            len(report.outcomes) == scenario.orders
            and not report.unfinished
            and len(report.returns) == scenario.returns
            and not report.returns_unfinished
        )
        return 0 if complete else 1


DEMO = LocalDemo()
