"""`waybill up` makes a local signing key, tells every service to trust it, and prints a
viewer's and an operator's token that the auditor's API accepts; no key or token is on a
command line."""

from __future__ import annotations

import asyncio
import signal
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from bs4 import BeautifulSoup

from tests.foundation.processes import wait_until_stack_gone
from waybill_runtime.security.local_api_keys import LocalApiKeys
from waybill_runtime.testing.waiting import eventually

WAYBILL = [sys.executable, "-m", "waybill_runtime"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _start_up(state_dir: Path, order_every: str = "0") -> subprocess.Popen[str]:
    ports = ["--port", "0", "--monitor-port", "0"]
    return subprocess.Popen(
        [*WAYBILL, "up", *ports, "--order-every", order_every, "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _issue_viewer_token(state_dir: Path) -> str:
    who = ["--role", "viewer", "--subject", "dana"]
    return subprocess.run(
        [*WAYBILL, "token", "issue", *who, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


def _printed_until_up(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("Waybill is up."):
            return lines
    proc.wait(timeout=30)
    raise AssertionError(f"waybill up did not come up: {lines}")


def _command_lines_of_the_stack() -> str:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return "\n".join(found)


async def test_up_prints_a_viewer_and_an_operator_token_the_auditor_accepts(
    tmp_path: Path,
) -> None:
    proc = _start_up(tmp_path)
    try:
        printed = await asyncio.to_thread(_printed_until_up, proc)
        tokens = {
            line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
            for line in printed
            if line.startswith(("  viewer:", "  operator:"))
        }
        assert set(tokens) == {"viewer", "operator"}
        orders_url = _printed(printed, "orders by stage; stuck ones")
        async with aiohttp.ClientSession() as http:
            async with http.get(orders_url) as anonymous:
                assert anonymous.status == 401
            for role, token in tokens.items():
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(orders_url, headers=headers) as response:
                    assert response.status == 200, (role, await response.text())
            # `waybill token issue` signs with the same key, found through the state folder.
            issued = await asyncio.to_thread(_issue_viewer_token, tmp_path)
            headers = {"Authorization": f"Bearer {issued}"}
            async with http.get(orders_url, headers=headers) as response:
                assert response.status == 200
        keys = LocalApiKeys.existing(tmp_path)
        assert stat.S_IMODE(keys.folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(keys.signing_key_file.stat().st_mode) == 0o600
        command_lines = _command_lines_of_the_stack()
        assert all(token not in command_lines for token in tokens.values())
        assert str(keys.signing_key_file) not in command_lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_until_stack_gone(tmp_path) == []


def _printed(printed: list[str], name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in printed if line.startswith(f"{name}:"))


async def test_up_prints_the_control_tower_whose_pages_show_the_live_demo_orders(
    tmp_path: Path,
) -> None:
    """What `make run` promises an operations person: a URL, how to sign in, the orders."""
    proc = _start_up(tmp_path, order_every="1")
    try:
        printed = await asyncio.to_thread(_printed_until_up, proc)
        tower = _printed(printed, "the control tower")
        operator_token = _printed(printed, "  operator")
        # A browser keeps cookies of an IP address host (aiohttp's jar needs telling).
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            # A browser without a token is sent to a page that says how to sign in.
            async with browser.get(tower, headers={"Accept": "text/html"}) as anonymous:
                assert anonymous.url.path == "/tower/sign-in"
                assert "waybill up" in await anonymous.text()
            sign_in = anonymous.url.with_query(None)
            async with browser.post(sign_in, data={"token": operator_token, "next": "/tower"}):
                pass

            async def demo_orders_on_the_overview() -> int:
                async with browser.get(tower, headers={"Accept": "text/html"}) as overview:
                    assert overview.status == 200 and overview.url.path == "/tower"
                    soup = BeautifulSoup(await overview.text(), "html.parser")
                # Orders by stage: a row per stage, its count in the first cell.
                rows = soup.select("table.stages tbody tr")
                return sum(int(row.td.text) for row in rows if row.th is not None and row.td)

            # The trickle creates an order a second; the page counts them as they arrive.
            first = await eventually(demo_orders_on_the_overview, timeout_s=90, what="demo orders")
            await eventually(
                demo_orders_on_the_overview,
                until=lambda count: count > first,
                timeout_s=90,
                what="the overview counting newer demo orders",
            )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_until_stack_gone(tmp_path) == []
