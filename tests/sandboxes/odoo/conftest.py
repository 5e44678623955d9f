"""Fixtures of the Odoo sandbox tests: a served sandbox in the versions the acceptance names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.sandboxes.odoo.running import RunningOdoo, running_odoo


@pytest.fixture(params=[17, 19], ids=["odoo17", "odoo19"])
async def odoo(request: pytest.FixtureRequest) -> AsyncIterator[RunningOdoo]:
    """A served sandbox, once as Odoo 17 and once as Odoo 19."""
    async with running_odoo(version=request.param) as running:
        yield running
