"""`waybill sandbox wms|carriers|mail`: options, errors, and real foreground processes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import smtplib
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest

from waybill_runtime.cli import main as waybill_main
from waybill_runtime.testing.waiting import eventually
from waybill_sandboxes.cli import build_parser, main

URL = re.compile(r"http://127\.0\.0\.1:\d+")


def test_help_lists_every_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    for name in ("wms", "carriers", "mail"):
        assert re.search(rf"^\s+{name}\s", listed, re.MULTILINE), name


@pytest.mark.parametrize("name", ["wms", "carriers", "mail"])
def test_each_sandbox_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    assert "--host" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["wms", "--port", "70000"], "not a TCP port"),
        (["wms", "--short-pick-rate", "2"], "not a probability"),
        (["wms", "--stage-delay", "-1"], "negative"),
        (["wms", "--delivery", "sometimes"], "invalid choice"),
        (["carriers", "--purchase-rate", "fast"], "not a rate per second"),
        (["mail", "--smtp-port", "http"], "not a port number"),
        (["submarine"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_options_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_bad_webhook_secret_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mail", "--secret", "whsec_!!!", "--port", "0", "--smtp-port", "0"]) == 2
    assert "whsec_" in capsys.readouterr().err


def test_a_taken_port_exits_2_saying_so(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        assert main(["wms", "--port", str(taken)]) == 2
    assert "pick another port" in capsys.readouterr().err


def test_waybill_sandbox_forwards_everything_including_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        waybill_main(["sandbox", "wms", "--help"])
    assert exited.value.code == 0
    assert "usage: waybill sandbox wms" in capsys.readouterr().out


def test_waybill_sandbox_without_the_sandboxes_installed_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from waybill_runtime.cli import sandbox

    # As if only the runtime were installed: no package registers the sandboxes' CLI.
    monkeypatch.setattr(sandbox, "entry_points", lambda group: [])
    with pytest.raises(SystemExit) as exited:
        waybill_main(["sandbox", "wms"])
    assert exited.value.code == 2
    assert "pip install -e deploy/sandboxes" in capsys.readouterr().err


@asynccontextmanager
async def sandbox_process(
    *argv: str, env: dict[str, str] | None = None, last: str = "stops"
) -> AsyncIterator[tuple[list[str], str]]:
    """Run ``python -m waybill_sandboxes ARGV`` (with ``env`` added to the environment);
    yield its URLs and banner (up to a line with ``last``), then SIGTERM it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "waybill_sandboxes",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    banner: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not banner or last not in banner[-1]:
                line = (await process.stdout.readline()).decode()
                assert line, f"the sandbox exited early: {''.join(banner)}"
                banner.append(line)
        text = "".join(banner)
        yield URL.findall(text), text
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await process.wait()
    assert code == 0


async def test_wms_runs_in_the_foreground_and_stops_on_sigterm(
    http: aiohttp.ClientSession,
) -> None:
    async with sandbox_process("wms", "--port", "0", "--api-key", "k1") as (urls, banner):
        assert "X-Api-Key: k1" in banner
        async with http.get(f"{urls[0]}/api/v1/inventory/SKU", headers={"X-Api-Key": "k1"}) as r:
            assert (await r.json())["sku"] == "SKU"


async def test_wms_started_to_reject_returns_judges_every_returned_unit_damaged(
    http: aiohttp.ClientSession,
) -> None:
    argv = ("wms", "--port", "0", "--api-key", "k1", "--reject-returns")
    async with sandbox_process(*argv) as (urls, banner):
        assert f"{urls[0]}/_sandbox/returns" in banner
        expected = {"client_return_ref": "RET-CLI-1", "lines": [{"sku": "MUG", "qty": 2}]}
        async with http.post(
            f"{urls[0]}/api/v1/returns", json=expected, headers={"X-Api-Key": "k1"}
        ) as r:
            assert r.status == 201
        async with http.post(f"{urls[0]}/_sandbox/returns/RET-CLI-1/receive") as r:
            (line,) = (await r.json())["lines"]
    assert (line["qty_resellable"], line["qty_damaged"]) == (0, 2)


async def test_secrets_from_the_environment_are_used_and_never_printed(
    http: aiohttp.ClientSession,
) -> None:
    env = {
        "WAYBILL_SANDBOX_WMS_API_KEY": "wms-env-key-5d1c",
        "WAYBILL_SANDBOX_WMS_WEBHOOK_SECRET": "wms-env-secret-77ab",
    }
    async with sandbox_process("wms", "--port", "0", env=env) as (urls, banner):
        headers = {"X-Api-Key": "wms-env-key-5d1c"}
        async with http.get(f"{urls[0]}/api/v1/inventory/SKU", headers=headers) as r:
            assert r.status == 200
    assert "wms-env-key-5d1c" not in banner and "wms-env-secret-77ab" not in banner
    assert "X-Api-Key: (from $WAYBILL_SANDBOX_WMS_API_KEY)" in banner
    assert "Webhook secret: (from $WAYBILL_SANDBOX_WMS_WEBHOOK_SECRET)" in banner


async def test_carrier_and_mail_secrets_from_the_environment_stay_out_of_the_banner() -> None:
    env = {
        "WAYBILL_SANDBOX_CARRIER_A_API_KEY": "EZTKenv0001",
        "WAYBILL_SANDBOX_CARRIER_A_WEBHOOK_SECRET": "a-env-secret-0001",
        "WAYBILL_SANDBOX_CARRIER_B_API_KEY": "shippo_test_env0001",
        "WAYBILL_SANDBOX_CARRIER_B_WEBHOOK_SECRET": "b-env-secret-0001",
        "WAYBILL_SANDBOX_MAIL_WEBHOOK_SECRET": "whsec_" + "QUFB" * 8,
    }
    argv = ("carriers", "--easypost-port", "0", "--shippo-port", "0")
    async with sandbox_process(*argv, env=env) as (_urls, carriers):
        pass
    async with sandbox_process("mail", "--port", "0", "--smtp-port", "0", env=env) as (_, mail):
        pass
    assert [value for value in env.values() if value in carriers + mail] == []
    assert carriers.count("(from $WAYBILL_SANDBOX_CARRIER_") == 4
    assert "Webhook secret: (from $WAYBILL_SANDBOX_MAIL_WEBHOOK_SECRET)" in mail


def test_the_odoo_webhook_url_and_its_token_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "http://127.0.0.1:9/webhooks/odoo/tok-0123456789abcdef"
    monkeypatch.setenv("WAYBILL_SANDBOX_ODOO_WEBHOOK_URL", url)
    args = build_parser().parse_args(["odoo"])
    assert args.webhook_url == url


async def test_an_odoo_admin_password_from_the_environment_replaces_admin_and_is_not_shown(
    http: aiohttp.ClientSession,
) -> None:
    env = {"WAYBILL_SANDBOX_ODOO_ADMIN_PASSWORD": "odoo-env-pw-31c9"}
    argv = ("odoo", "--port", "0", "--orders", "0")
    async with sandbox_process(*argv, env=env, last="/_sandbox/odoo/info") as (urls, banner):

        async def login(password: str) -> Any:
            call = {"service": "common", "method": "login", "args": ["waybill", "admin", password]}
            payload = {"jsonrpc": "2.0", "method": "call", "params": call, "id": 1}
            async with http.post(f"{urls[0]}/jsonrpc", json=payload) as answer:
                return (await answer.json())["result"]

        assert await login("odoo-env-pw-31c9") == 2
        assert await login("admin") is False
    assert "odoo-env-pw-31c9" not in banner and "password 'ops'" not in banner
    assert not re.search(r"API key [0-9a-f]{40}", banner)
    assert "passwords and API keys not shown" in banner


async def test_carriers_run_on_two_ports_with_their_own_apis(
    http: aiohttp.ClientSession,
) -> None:
    argv = ("carriers", "--easypost-port", "0", "--shippo-port", "0", "--shippo-key", "tok")
    async with sandbox_process(*argv) as (urls, banner):
        assert len(set(urls)) == 2
        assert "ShippoToken tok" in banner
        async with http.get(
            f"{urls[1]}/tracks/usps/1", headers={"Authorization": "ShippoToken tok"}
        ) as r:
            assert (await r.json())["tracking_status"]["status"] == "UNKNOWN"
        async with http.get(f"{urls[0]}/v2/trackers") as resp:
            assert resp.status == 401


async def test_mail_prints_smtp_address_and_secret_and_captures_mail(
    http: aiohttp.ClientSession,
) -> None:
    async with sandbox_process("mail", "--port", "0", "--smtp-port", "0") as (urls, banner):
        smtp_port = int(re.findall(r"SMTP:\s+127\.0\.0\.1:(\d+)", banner)[0])
        assert re.search(r"Webhook secret: whsec_\S+", banner)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@x.example", "b@x.example", "hi"
        message.set_content("hello")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                client.send_message(message)

        await asyncio.to_thread(send)
        async with http.get(f"{urls[0]}/_sandbox/mail") as resp:
            assert [m["subject"] for m in (await resp.json())["messages"]] == ["hi"]


async def test_the_benchmark_profile_from_the_environment_takes_the_stage_delays_off(
    http: aiohttp.ClientSession,
) -> None:
    # 60 s per stage would keep the order from shipping for four minutes; the profile,
    # set the way the local stack sets it, makes the options' delay not apply. And the
    # shelves do not run empty: 5,000 crates, five times the standard stock, are picked.
    argv = ("wms", "--port", "0", "--api-key", "k1", "--stage-delay", "60")
    env = {"WAYBILL_SANDBOX_PROFILE": "benchmark"}
    async with sandbox_process(*argv, env=env) as (urls, _banner):
        headers = {"X-Api-Key": "k1"}
        order = {
            "client_order_ref": "SO-BENCH-1",
            "ship_to": {
                "name": "B. Baker",
                "street1": "1 Quay",
                "city": "Hull",
                "postal_code": "HU1 1AA",
                "country": "GB",
            },
            "lines": [{"sku": "CRATE", "qty": 5000}],
        }
        async with http.post(f"{urls[0]}/api/v1/outbound-orders", json=order, headers=headers) as r:
            assert r.status == 201
            order_id = (await r.json())["order_id"]

        async def current() -> dict[str, Any]:
            url = f"{urls[0]}/api/v1/outbound-orders/{order_id}"
            async with http.get(url, headers=headers) as r:
                found: dict[str, Any] = await r.json()
                return found

        # The bound is for a hung test, far below a single stage's delay.
        final = await eventually(
            current, until=lambda o: o["status"] in ("shipped", "short_picked"), what="its end"
        )
    assert final["status"] == "shipped" and not final["short_picked"]
    assert [line["qty_picked"] for line in final["lines"]] == [5000]


@pytest.mark.parametrize(
    ("profile", "statuses"), [("standard", [200, 429]), ("benchmark", [200, 200])]
)
async def test_product_uploads_are_metered_except_in_the_benchmark_profile(
    http: aiohttp.ClientSession, profile: str, statuses: list[int]
) -> None:
    argv = ("wms", "--port", "0", "--api-key", "k1", "--product-calls-rate", "1")
    env = {"WAYBILL_SANDBOX_PROFILE": profile}
    async with sandbox_process(*argv, env=env) as (urls, _banner):
        seen = []
        for _ in statuses:
            body = {"products": [{"sku": "CRATE", "weight_kg": 2}]}
            url = f"{urls[0]}/api/v1/products"
            async with http.post(url, json=body, headers={"X-Api-Key": "k1"}) as r:
                seen.append(r.status)
    assert seen == statuses


def test_an_unknown_profile_in_the_environment_is_refused_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from waybill_sandboxes.profile import profile_from_env

    monkeypatch.setenv("WAYBILL_SANDBOX_PROFILE", "turbo")
    with pytest.raises(ValueError, match="standard, benchmark"):
        profile_from_env()
