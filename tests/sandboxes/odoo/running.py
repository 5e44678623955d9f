"""Starting an Odoo sandbox for a test, and running synchronous client scripts beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from waybill_sandboxes.odoo import OdooSandbox, OdooSettings, build_odoo_app
from waybill_sandboxes.server import serve

DB = "waybill"


@dataclass(frozen=True)
class RunningOdoo:
    """A served sandbox: the object (for admin calls and inspection) and where it listens."""

    sandbox: OdooSandbox
    url: str
    port: int

    @property
    def version(self) -> int:
        return self.sandbox.version.major


@asynccontextmanager
async def running_odoo(**settings: Any) -> AsyncIterator[RunningOdoo]:
    """Serve a fresh sandbox on a free port for the duration of the block."""
    sandbox = OdooSandbox(OdooSettings(db=DB, **settings))
    async with serve(build_odoo_app(sandbox)) as running:
        yield RunningOdoo(sandbox, running.url, running.port)
