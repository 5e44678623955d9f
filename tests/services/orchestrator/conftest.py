"""Fixtures of the orchestrator's store-level tests: the workflow bucket on a real NATS server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from waybill_contracts import SubjectMap
from waybill_runtime.bus.provisioning import StreamPolicy, ensure_bucket, ensure_streams


@pytest.fixture
async def parts(nc: NatsClient, nats_prefix: str) -> AsyncIterator[tuple[SubjectMap, Any]]:
    """The streams and the workflow bucket, as a running orchestrator provisions them."""
    subjects = SubjectMap(nats_prefix)
    js = nc.jetstream()
    await ensure_streams(js, subjects, StreamPolicy())
    yield subjects, await ensure_bucket(js, subjects.kv_bucket("workflow"))
