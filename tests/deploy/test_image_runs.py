"""The image's environment, made by the recipe's own commands from the lock, installs cleanly
and its entry point (`waybill run`, the service named by WAYBILL_SERVICE) starts each service
against a real nats-server until it answers /readyz; the OTEL_* variables alone switch trace
export on, received here by a real OTLP/HTTP endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from aiohttp import web

from tests.deploy.image import ImageEnvironment, recipe, service_dirs
from tests.deploy.lockfile import read_lock
from waybill_contracts import SubjectMap, encode, new_context
from waybill_contracts.events import OrderReleased
from waybill_contracts.examples import example_of
from waybill_runtime.bus.provisioning import provision_mesh
from waybill_runtime.local.ports import free_port
from waybill_runtime.local.registry import service_named
from waybill_runtime.settings import RuntimeSettings, env_var_name, load_settings
from waybill_runtime.testing.authenticated import AuthenticatedServer
from waybill_runtime.testing.tokens import api_keys
from waybill_runtime.testing.waiting import eventually

# A clean environment installed from the lock file, then every image entry point: make long.
pytestmark = [pytest.mark.long, pytest.mark.timeout(600)]  # the first test pays the install


@dataclass
class RunningImage:
    process: asyncio.subprocess.Process
    environment: dict[str, str]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.environment['WAYBILL_HTTP_PORT']}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _filled_required_settings(service: str) -> dict[str, str]:
    # A partner's credentials the service cannot start without (the partner itself is
    # not running here): placeholders long enough for any length rule.
    declaration = service_named(service).describe()
    return {
        s.env_var: "placeholder-value-for-the-image-test"
        for s in declaration.settings
        if s.required and s.env_var != "WAYBILL_SERVICE"
    }


@contextlib.asynccontextmanager
async def run_image(
    image: ImageEnvironment,
    server: AuthenticatedServer,
    service: str,
    prefix: str,
    folder: Path,
    extra: dict[str, str] | None = None,
) -> AsyncIterator[RunningImage]:
    """The service as its image starts it: the recipe's ENV and ENTRYPOINT, its own identity."""
    declaration = service_named(service).describe(subject_prefix=prefix)
    harness = await nats.connect(server.client_url, connect_timeout=5)
    try:
        settings = load_settings(
            RuntimeSettings, environ={}, service="admin", subject_prefix=prefix
        )
        await provision_mesh(harness.jetstream(), [declaration], settings, tracing=True)
    finally:
        await harness.close()
    seed = await asyncio.to_thread(server.enroll, declaration, prefix)
    state = folder / f"state-{service}"
    state.mkdir()
    environment = image.environment(
        service,
        {
            "NATS_URL": server.bare_url,
            "WAYBILL_NATS_NKEY_SEED_FILE": str(seed),
            "WAYBILL_PROVISION": "never",
            "WAYBILL_SUBJECT_PREFIX": prefix,
            "WAYBILL_STATE_DIR": str(state),
            "WAYBILL_HTTP_PORT": str(free_port()),
            "WAYBILL_HTTP_HOST": "127.0.0.1",
            # Partner settings keep their defaults, the sandboxes' well-known values,
            # which a service accepts only on one machine.
            "WAYBILL_LOCAL_STACK": "true",
            # Its API trusts a key of the test's own, as a cluster's trusts its identity provider.
            **{env_var_name(k): v for k, v in api_keys(folder / "api").settings().items()},
            **_filled_required_settings(service),
            **(extra or {}),
        },
    )
    (entrypoint,) = recipe().stage("runtime").all("ENTRYPOINT")
    log = folder / f"{service}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *image.command(entrypoint.exec_form() or []),
            env=environment,
            cwd=state,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = RunningImage(process, environment, log)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=60)
            except TimeoutError:
                process.kill()
                await process.wait()
        server.release(declaration, prefix)


async def _get(url: str) -> tuple[int, Any]:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            body = await response.text()
            return response.status, json.loads(body) if body.startswith("{") else body
    except aiohttp.ClientError:
        return 0, None


async def answered(running: RunningImage, path: str) -> tuple[int, Any]:
    async def probe() -> tuple[int, Any]:
        if running.process.returncode is not None:
            raise AssertionError(
                f"the service exited ({running.process.returncode}):\n{running.tail()}"
            )
        return await _get(running.base_url + path)

    return await eventually(
        probe, until=lambda answer: answer[0] != 0, timeout_s=60, what=f"{path} to answer"
    )


def test_the_locked_packages_install_into_a_clean_environment(
    image_environment: ImageEnvironment,
) -> None:
    # The recipe ran `pip check` already; here: nothing came in that the lock does not name.
    listed = subprocess.run(
        [
            str(image_environment.bin / "pip"),
            "list",
            "--format=json",
            "--disable-pip-version-check",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    locked = set(read_lock()) | {"pip", "waybill-contracts", "waybill-runtime"}
    assert installed - locked == set(), f"installed but not locked: {installed - locked}"
    imports = subprocess.run(
        [
            str(image_environment.bin / "python"),
            "-c",
            "import opentelemetry.sdk.trace, "
            "opentelemetry.exporter.otlp.proto.http.trace_exporter, "
            "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imports.returncode == 0, imports.stderr


@pytest.mark.slow
@pytest.mark.parametrize("service", service_dirs())
async def test_the_image_entry_point_starts_the_service_until_it_is_ready(
    image_environment: ImageEnvironment,
    nats_server: AuthenticatedServer,
    nats_prefix: str,
    tmp_path: Path,
    service: str,
) -> None:
    async with run_image(image_environment, nats_server, service, nats_prefix, tmp_path) as running:
        assert (await answered(running, "/healthz"))[0] == 200
        ready = await eventually(
            lambda: _get(running.base_url + "/readyz"),
            until=lambda answer: answer[0] == 200 or _only_partners_unready(service, answer),
            timeout_s=60,
            what=f"{service} to be ready",
        )
        assert ready[1]["service"] == service
        (check,) = recipe().stage("runtime").all("HEALTHCHECK")
        health = await asyncio.create_subprocess_exec(
            *image_environment.command(check.exec_form() or []), env=running.environment
        )
        assert await asyncio.wait_for(health.wait(), timeout=60) == 0
        running.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(running.process.wait(), timeout=60) == 0, running.tail()


def _only_partners_unready(service: str, answer: tuple[int, Any]) -> bool:
    """Not ready only because a partner the service declares is not running in this test."""
    status, body = answer
    if status != 503 or not isinstance(body, dict):
        return False
    partners = {p.name for p in service_named(service).describe().partners}
    failing = {c["name"] for c in body["checks"] if not c["ok"]}
    return bool(failing) and failing <= partners


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP endpoint: what was posted to /v1/traces, as (content type, body)."""

    received: list[tuple[str, bytes]] = field(default_factory=list)

    async def traces(self, request: web.Request) -> web.Response:
        self.received.append((request.content_type, await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")


@contextlib.asynccontextmanager
async def otlp_receiver() -> AsyncIterator[tuple[str, OtlpReceiver]]:
    receiver = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.traces)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}", receiver
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_otel_variables_alone_switch_trace_export_on(
    image_environment: ImageEnvironment,
    nats_server: AuthenticatedServer,
    nats_prefix: str,
    tmp_path: Path,
) -> None:
    async with (
        otlp_receiver() as (endpoint, receiver),
        run_image(
            image_environment,
            nats_server,
            "auditor",
            nats_prefix,
            tmp_path,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"},
        ) as running,
    ):
        assert (await answered(running, "/readyz"))[0] == 200
        subjects = SubjectMap(nats_prefix)
        message = example_of(OrderReleased)
        encoded = encode(message, new_context(message, source="odoo-gateway"), subjects)
        harness = await nats.connect(nats_server.client_url, connect_timeout=5)
        try:
            await harness.jetstream().publish(
                encoded.subject, encoded.body, headers=dict(encoded.headers)
            )
        finally:
            await harness.close()

        async def exported() -> list[tuple[str, bytes]]:
            return list(receiver.received)

        posts = await eventually(
            exported,
            until=lambda posts: any(b"process " in body for _, body in posts),
            timeout_s=60,
            what="the auditor's process span at the OTLP endpoint",
        )
        content_type, body = next(p for p in posts if b"process " in p[1])
        assert content_type == "application/x-protobuf"
        assert b"service.name" in body and b"auditor" in body
        running.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(running.process.wait(), timeout=60) == 0, running.tail()
    assert os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") is None  # nothing leaked into this run
