"""The garbage collector set for a long-running service (waybill_runtime.collector)."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.test_bus_delivery import _start_example
from waybill_runtime.collector import (
    YOUNG_COLLECTION_THRESHOLD,
    freeze_startup_objects,
    tune_collector,
)
from waybill_runtime.testing.waiting import eventually


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
def test_young_collections_wait_for_more_allocations_and_older_ones_keep_their_ratios() -> None:
    gc.set_threshold(700, 10, 10)
    tune_collector()
    assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("collector_restored")
def test_what_lives_at_start_up_is_left_out_of_every_collection() -> None:
    gc.unfreeze()
    kept = [[n] for n in range(1000)]  # alive: frozen, no longer walked
    freeze_startup_objects()
    assert gc.get_freeze_count() >= len(kept)
    assert not any(gc.is_tracked(obj) and obj in gc.get_objects(generation=2) for obj in kept[:3])


async def test_a_started_service_freezes_its_start_up_objects(
    nats_url: str, nats_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Service.main (what `waybill run` calls) freezes once the service has started.
    log = tmp_path / "example.log"
    monkeypatch.setenv("WAYBILL_LOG_LEVEL", "debug")
    process = _start_example(nats_url, nats_prefix, log)
    try:
        line = await eventually(
            lambda: asyncio.to_thread(log.read_text),
            until=lambda text: "left out of garbage collection" in text,
            what="the service to freeze its start-up objects",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)
    messages = [json.loads(row)["message"] for row in line.splitlines() if row.startswith("{")]
    frozen = [m for m in messages if m.startswith("start-up objects left out")]
    assert int(frozen[0].rpartition(": ")[2]) > 10_000  # the runtime, contracts, aiohttp app
