"""The control tower in a real browser (headless Chromium, Debian's package, driven by
Playwright): the overview loads without console errors and shows a held order among the
stuck ones without a reload; a viewer sees no buttons; an operator replays a dead letter by
clicking, and the replay shows in the order's timeline with their name.

Chromium is a system package (`apt-get install chromium`; `.ci/run` installs it): without it
these tests fail and say so, they never skip.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from playwright.async_api import Browser, BrowserContext, async_playwright, expect

from tests.services.auditor.journey import for_order
from tests.services.auditor.tower import Tower, running_tower, send
from waybill_contracts import encode, new_context
from waybill_contracts.events import ExceptionRaised, OrderReleased, ShipmentBooked
from waybill_contracts.examples import example_of
from waybill_runtime.bus.dead_letters import DeadLetter, now_utc, write_dead_letter
from waybill_runtime.security.api_tokens import Role

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

HELD = "WH/OUT/00800"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "the browser tests need Debian's chromium: apt-get install chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        await launched.close()


async def signed_in(browser: Browser, tower: Tower, role: Role, subject: str) -> BrowserContext:
    """A browser session signed in as a person pastes a token on the sign-in page."""
    context = await browser.new_context(base_url=tower.url)
    page = await context.new_page()
    await page.goto("/tower")
    await expect(page).to_have_url(f"{tower.url}/tower/sign-in?next=/tower")
    token = tower.keys.issue(role, subject=subject, ttl=timedelta(hours=1)).token
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{tower.url}/tower")
    await page.close()
    return context


async def test_a_held_order_appears_among_stuck_orders_without_a_reload(
    browser: Browser, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with running_tower(nats_url, nats_prefix) as tower:
        context = await signed_in(browser, tower, "viewer", "vic")
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto("/tower")
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        await expect(page.locator("tr.stuck-order")).to_have_count(0)
        await expect(page.locator("body[data-live-state=open]")).to_have_count(1)
        # The page's live stream is open; now the WMS's trouble holds an order (hours ago).
        now = datetime.now(UTC)
        cause = await send(
            nc, tower.subjects, for_order(OrderReleased, HELD), source="odoo-gateway",
            correlation=HELD, time=now - timedelta(hours=6),
        )  # fmt: skip
        held = msgspec.structs.replace(
            example_of(ExceptionRaised), order_ref=HELD, exception_id="exc-b-1",
            summary="Short pick at the warehouse", order_held=True,
            raised_at=now - timedelta(hours=5),
        )  # fmt: skip
        await send(
            nc, tower.subjects, held, source="orchestrator", correlation=HELD, cause=cause,
            time=now - timedelta(hours=5),
        )  # fmt: skip
        stuck = page.locator("tr.stuck-order")
        await expect(stuck).to_have_count(1, timeout=15_000)
        await expect(stuck).to_contain_text(HELD)
        await expect(stuck).to_contain_text("Short pick at the warehouse")
        # A viewer has no buttons but signing out and searching.
        assert await page.locator("form[action^='/tower/actions'] button").count() == 0
        assert errors == []
        await context.close()


async def test_an_operator_replays_a_dead_letter_by_clicking(
    browser: Browser, nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with running_tower(nats_url, nats_prefix) as tower:
        message = for_order(ShipmentBooked, HELD)
        encoded = encode(message, new_context(message, source="carrier-router"), tower.subjects)
        await write_dead_letter(
            nc.jetstream(),
            tower.subjects,
            DeadLetter(
                service="orchestrator", consumer="orchestrator-events",
                reason="max deliveries exhausted", error_type="TransientError",
                error_message="workflow bucket unavailable", attempts=5, failed_at=now_utc(),
                original_subject=encoded.subject, original_headers=dict(encoded.headers),
                original_body=encoded.body,
            ),
        )  # fmt: skip
        context = await signed_in(browser, tower, "operator", "olga")
        page = await context.new_page()
        await page.goto("/tower/dead-letters")
        replay = page.get_by_role("button", name="Replay dead letter 1")
        await expect(replay).to_be_visible(timeout=15_000)
        await replay.click()
        await expect(page).to_have_url(f"{tower.url}/tower/orders/{HELD}?done=replay-dead-letter")
        await expect(page.locator(".entry .operator", has_text="replayed by olga")).to_have_count(
            1, timeout=15_000
        )
        await context.close()
