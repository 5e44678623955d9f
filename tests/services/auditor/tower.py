"""Helpers for the control tower's tests: a running auditor, pages fetched and parsed."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from bs4 import BeautifulSoup, Tag
from nats.aio.client import Client as NatsClient

from tests.services.auditor.journey import publish
from waybill_auditor.app import build_service
from waybill_contracts import Message, MessageContext, SubjectMap, new_context
from waybill_runtime.local.ports import free_port
from waybill_runtime.security.api_tokens import Role
from waybill_runtime.security.local_api_keys import LocalApiKeys
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.tokens import bearer, temporary_api_keys, trusting

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_TEMPLATE = "http://traces.example/trace/{trace_id}"


@dataclass
class Tower:
    """A running auditor: its URL, the keys it trusts, the subjects it reads."""

    url: str
    keys: LocalApiKeys
    subjects: SubjectMap

    def session(
        self, role: Role | None = "viewer", subject: str | None = None
    ) -> aiohttp.ClientSession:
        """An HTTP session calling as ``role`` (None: no token), not following redirects."""
        headers = bearer(self.keys, role, subject=subject) if role is not None else {}
        # unsafe: keep cookies of an IP-address host (127.0.0.1), as a browser does.
        jar = aiohttp.CookieJar(unsafe=True)
        return aiohttp.ClientSession(self.url, headers=headers, cookie_jar=jar)


@contextlib.asynccontextmanager
async def running_tower(nats_url: str, prefix: str, **settings: Any) -> AsyncIterator[Tower]:
    port = free_port()
    with temporary_api_keys() as keys, tempfile.TemporaryDirectory(prefix="audit-") as folder:
        async with running_service(
            build_service(),
            nats_url=nats_url,
            subject_prefix=prefix,
            http_port=port,
            audit_db=str(Path(folder) / "audit.sqlite"),
            **{"trace_url_template": TRACE_TEMPLATE, **trusting(keys), **settings},
        ):
            yield Tower(f"http://127.0.0.1:{port}", keys, SubjectMap(prefix))


async def page(http: aiohttp.ClientSession, path: str, **params: str) -> BeautifulSoup:
    """A page as a viewer's browser gets it, parsed; fails on anything but a 200 HTML page."""
    async with http.get(path, params=params, headers={"Accept": "text/html"}) as response:
        text = await response.text()
        assert response.status == 200, (path, response.status, text[:500])
        assert response.content_type == "text/html"
        return BeautifulSoup(text, "html.parser")


def text_of(soup: Tag, selector: str) -> str:
    """The text of the one element matching ``selector`` (fails when there is none)."""
    found = soup.select_one(selector)
    assert found is not None, f"nothing matches {selector!r}"
    return found.get_text(" ", strip=True)


def rows_of(soup: BeautifulSoup, selector: str) -> list[list[str]]:
    """The cells' text of each row matching ``selector``."""
    return [
        [cell.get_text(" ", strip=True) for cell in row.find_all(["th", "td"])]
        for row in soup.select(selector)
    ]


def traced(context: MessageContext) -> MessageContext:
    return msgspec.structs.replace(context, traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01")


async def send(
    nc: NatsClient,
    subjects: SubjectMap,
    message: Message,
    *,
    source: str,
    correlation: str,
    cause: MessageContext | None = None,
    **context: Any,
) -> MessageContext:
    """Publish ``message`` as ``source`` would, in the trace :data:`TRACE_ID`."""
    sent = traced(
        new_context(
            message,
            source=source,
            cause=cause,
            correlation_id=None if cause is not None else correlation,
            **context,
        )
    )
    await publish(nc, subjects, message, sent)
    return sent
