"""Fixtures shared by the sandbox tests: an HTTP client and a webhook inbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.sandboxes.inbox import Inbox
from waybill_sandboxes.server import RunningSandbox, serve


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with a generous timeout."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def inbox() -> AsyncIterator[tuple[Inbox, RunningSandbox]]:
    """A webhook inbox served on a free port."""
    receiver = Inbox()
    async with serve(receiver.app()) as running:
        yield receiver, running
