"""Serving the HTTP app on a real port, and the error when the port is taken."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from waybill_runtime.errors import UserFacingError
from waybill_runtime.http import BoundAddress, create_http_app, serve_http
from waybill_runtime.metrics import MetricsRegistry


def app() -> web.Application:
    return create_http_app(service="notifier", registry=MetricsRegistry("notifier"), readiness=())


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_port_zero_serves_on_a_free_port_it_reports() -> None:
    async with serve_http(app(), "127.0.0.1", 0) as bound:
        assert bound.port > 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{bound.url}/healthz") as response,
        ):
            assert response.status == 200
            assert (await response.json())["service"] == "notifier"


async def test_the_server_stops_when_the_block_ends() -> None:
    async with serve_http(app(), "127.0.0.1", 0) as bound:
        port = bound.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))  # free again


async def test_a_taken_port_is_a_user_facing_error_saying_what_to_set(taken_port: int) -> None:
    with pytest.raises(UserFacingError) as caught:
        async with serve_http(app(), "127.0.0.1", taken_port):
            pytest.fail("must not serve on a taken port")
    assert str(caught.value) == (
        f"port {taken_port} on 127.0.0.1 is already in use: "
        "set WAYBILL_HTTP_PORT to a free port (or 0 for any)"
    )


async def test_an_address_not_on_this_machine_is_a_user_facing_error() -> None:
    with pytest.raises(UserFacingError, match="WAYBILL_HTTP_HOST"):
        async with serve_http(app(), "192.0.2.1", 0):  # TEST-NET-1, never local
            pytest.fail("must not serve on a foreign address")


def test_bound_address_gives_a_local_url() -> None:
    assert BoundAddress("0.0.0.0", 8080).url == "http://127.0.0.1:8080"
    assert BoundAddress("::", 8080).url == "http://[::1]:8080"
    assert BoundAddress("10.1.2.3", 81).url == "http://10.1.2.3:81"
    assert str(BoundAddress("0.0.0.0", 8080)) == "0.0.0.0:8080"
