"""Provisioning as the admin (`waybill provision`, `waybill up`) gives each service's durables
that service's own consumer limits, not the runtime's, unless the environment sets them."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from waybill_runtime.bus.provisioning import provision_mesh
from waybill_runtime.local.registry import load_services
from waybill_runtime.settings import RuntimeSettings, load_settings


async def _durable_limits(nc: NatsClient, prefix: str, environ: dict[str, str]) -> set[int]:
    notifier = load_services(["notifier"])["notifier"].describe(subject_prefix=prefix)
    settings = load_settings(RuntimeSettings, {}, service="admin", subject_prefix=prefix)
    js = nc.jetstream()
    await provision_mesh(js, [notifier], settings, environ=environ)
    durables = {(m.stream, m.durable) for m in notifier.consumes}
    assert durables
    found = set()
    for stream, durable in durables:
        info = await js.consumer_info(stream, durable)
        found.add(info.config.max_deliver)
    return found


async def test_a_service_s_durables_keep_its_own_redelivery_limit(
    nc: NatsClient, nats_prefix: str
) -> None:
    # The notifier waits out slow webhook endpoints: 40 deliveries, where the runtime says 8.
    assert await _durable_limits(nc, nats_prefix, {}) == {40}


async def test_the_environment_still_sets_the_limit_for_every_service(
    nc: NatsClient, nats_prefix: str
) -> None:
    assert await _durable_limits(nc, nats_prefix, {"WAYBILL_MAX_DELIVER": "5"}) == {5}
