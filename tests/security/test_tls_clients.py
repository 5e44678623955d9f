"""A client asked to use TLS uses it: TLS settings with a nats:// URL, or a tls:// URL, never
end in plaintext, not even with a server that would take it; a server without TLS (or one
posing as the real one) is refused before anything is sent. A client without the CA, or
without a client certificate for mutual TLS, is told in one line what to set."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from waybill_runtime.bus.client import connect_client, shown_url
from waybill_runtime.bus.connection import ConnectionEvents, connect
from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.embedded_nats import EmbeddedNatsOptions
from waybill_runtime.local.stack import LocalStack, check_nats_reachable
from waybill_runtime.security.local_ca import ensure_local_pki
from waybill_runtime.security.nkeys_store import new_seed_file
from waybill_runtime.security.permissions import OPERATOR, inbox_prefix
from waybill_runtime.security.tls import (
    TlsFiles,
    TlsNotOffered,
    client_context,
    demands_tls,
    explain_tls_failure,
    insist_on_tls,
)
from waybill_runtime.service import Service
from waybill_runtime.settings import RuntimeSettings, load_settings
from waybill_runtime.testing.authenticated import AuthenticatedServer
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.tls import (
    TlsNats,
    connect_over_tls,
    provision_over_tls,
    start_tls_server,
)
from waybill_runtime.testing.waiting import eventually

ONE_ATTEMPT: dict[str, Any] = {
    "connect_timeout": 5,
    "allow_reconnect": False,
    "max_reconnect_attempts": 0,
}


def local_ca(state_dir: Path) -> str:
    """The CA file of a local CA made in ``state_dir`` (no server needed)."""
    return str(ensure_local_pki(state_dir, hosts=[]).ca_file)


async def _ignore(error: Exception) -> None:
    """nats-py's default error callback logs a traceback; the tests look at the raised error."""


@pytest.fixture(scope="module")
def tls_or_plaintext(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNats]:
    """A server that offers TLS but also takes plaintext clients (``allow_non_tls``)."""
    started = start_tls_server(tmp_path_factory.mktemp("nats-tls-optional"), also_plaintext=True)
    try:
        yield started
    finally:
        started.server.stop()


async def test_tls_settings_or_a_tls_url_connect_over_tls_where_plaintext_would_be_taken(
    tls_or_plaintext: TlsNats,
) -> None:
    server = tls_or_plaintext
    ca = client_context(TlsFiles(ca_file=server.files(OPERATOR).ca_file))
    clients = [
        await connect_over_tls(
            server, OPERATOR, url=server.plain_url, tls=ca, name="files-and-nats-url"
        ),
        await connect_over_tls(server, OPERATOR, tls=ca, name="tls-url"),
        # The same server takes a client that asks for nothing in plaintext.
        await connect_over_tls(
            server, OPERATOR, url=server.plain_url, tls=None, name="no-tls-settings"
        ),
    ]
    try:
        versions = server.tls_versions()
    finally:
        for client in clients:
            await client.close()
    assert versions["files-and-nats-url"].startswith("1.")
    assert versions["tls-url"].startswith("1.")
    assert versions["no-tls-settings"] == ""


async def test_a_service_with_tls_files_and_a_nats_url_talks_tls(
    tls_or_plaintext: TlsNats,
) -> None:
    await provision_over_tls(tls_or_plaintext)
    bridge: Service[RuntimeSettings] = Service("wms-bridge")
    settings = tls_or_plaintext.service_settings("wms-bridge")
    settings["nats_url"] = tls_or_plaintext.plain_url
    async with running_service(bridge, **settings):
        assert tls_or_plaintext.tls_versions()["wms-bridge"].startswith("1.")


@pytest.mark.parametrize(
    ("scheme", "with_files", "why"),
    [
        ("tls", False, "its URL is tls://"),
        ("nats", True, "it has TLS settings"),
        ("tls", True, "its URL is tls://"),
    ],
)
async def test_a_client_that_must_use_tls_refuses_a_server_without_it(
    nats_server: AuthenticatedServer, tmp_path: Path, scheme: str, with_files: bool, why: str
) -> None:
    ca = local_ca(tmp_path) if with_files else None
    url = nats_server.bare_url.replace("nats://", f"{scheme}://", 1)
    context = client_context(TlsFiles(ca_file=ca))
    with pytest.raises(TlsNotOffered) as refused:
        await connect_client(url, tls=context, error_cb=_ignore, **ONE_ATTEMPT)
    message = str(refused.value)
    assert message.startswith(f"NATS at {url} offers no TLS but this client must use TLS ({why}")
    assert "turn TLS on in the server" in message and "\n" not in message
    assert explain_tls_failure(refused.value, url) == message


async def test_nothing_reaches_a_server_posing_as_nats_without_tls(tmp_path: Path) -> None:
    """An impostor (or a server stripped of TLS on the way) gets no CONNECT, no signed nonce."""
    received: list[bytes] = []
    done = asyncio.Event()

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b'INFO {"server_id":"IMPOSTOR","version":"2.10.0","proto":1,"max_payload":1048576,'
            b'"auth_required":true,"nonce":"c2lnbi1tZQ"}\r\n'
        )
        await writer.drain()
        received.append(await reader.read())
        writer.close()
        done.set()

    listener = await asyncio.start_server(impostor, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    seed = tmp_path / "service.nk"
    new_seed_file(seed)
    try:
        context = client_context(TlsFiles(ca_file=local_ca(tmp_path)))
        with pytest.raises(TlsNotOffered):
            await connect_client(
                f"nats://127.0.0.1:{port}",
                tls=context,
                nkeys_seed=str(seed),
                error_cb=_ignore,
                **ONE_ATTEMPT,
            )
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        listener.close()
        await listener.wait_closed()
    assert received == [b""]


def test_who_insists_on_tls_and_how(tmp_path: Path) -> None:
    ca = local_ca(tmp_path)
    asked = client_context(TlsFiles(ca_file=ca))
    found = client_context(TlsFiles(ca_file=ca, required=False))
    assert demands_tls(asked) and not demands_tls(found) and not demands_tls(None)

    def decided(info: dict[str, Any], scheme: str, context: Any) -> dict[str, Any]:
        insist_on_tls(info, url=f"{scheme}://nats:4222", scheme=scheme, context=context)
        return info

    # Offered but optional: a client that must use TLS turns it on; others are left alone.
    assert decided({"tls_available": True}, "nats", asked)["tls_required"] is True
    assert decided({"tls_available": True}, "tls", None)["tls_required"] is True
    assert "tls_required" not in decided({"tls_available": True}, "nats", None)
    assert "tls_required" not in decided({"tls_available": True}, "nats", found)
    # A plaintext server: fine for a client that asks for nothing or only found a local CA.
    assert decided({}, "nats", None) == {} and decided({}, "nats", found) == {}
    # Websockets: wss is TLS already; ws with TLS settings is refused, naming wss://.
    assert decided({}, "wss", asked) == {}
    with pytest.raises(TlsNotOffered, match=r"plaintext websocket .* use a wss:// URL"):
        decided({}, "ws", asked)


@pytest.mark.parametrize(
    ("mutual", "with_ca", "told"),
    [
        (False, False, "presented a certificate this client does not trust"),
        (True, True, "requires a client certificate it trusts and this client presented none"),
    ],
    ids=["no-ca", "no-client-certificate"],
)
async def test_a_service_missing_a_tls_file_says_what_to_set_while_it_waits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mutual: bool, with_ca: bool, told: str
) -> None:
    server = start_tls_server(tmp_path, mutual=mutual)
    probe: Service[RuntimeSettings] = Service("tls-waiting-probe")
    overrides: dict[str, Any] = {"nats_url": server.url, "subject_prefix": "tlswait"}
    if with_ca:
        overrides["nats_tls_ca_file"] = server.files(OPERATOR).ca_file
    settings = load_settings(RuntimeSettings, environ={}, service=probe.name, **overrides)
    stop = asyncio.Event()
    try:
        with caplog.at_level(logging.WARNING, logger="waybill.bus"):
            serving = asyncio.create_task(probe.serve(settings, stop))

            async def told_lines() -> list[str]:
                return [r.getMessage() for r in caplog.records if told in r.getMessage()]

            lines = await eventually(told_lines, what=f"a log line saying {told!r}")
            stop.set()
            await serving
    finally:
        stop.set()
        server.server.stop()
    variable = "WAYBILL_NATS_TLS_CERT_FILE" if mutual else "WAYBILL_NATS_TLS_CA_FILE"
    assert variable in lines[0] and "\n" not in lines[0]
    assert lines[0].startswith(f"NATS at {server.url} ")


async def test_a_tls_connection_losing_its_server_blames_no_certificate_and_logs_no_noise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_tls_server(tmp_path)
    assert server.security is not None
    events = ConnectionEvents(server.url)
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING):
        nc = await connect(
            server.url,
            name="tls-loss-probe",
            nkey_seed_file=str(server.security.seed_file(OPERATOR)),
            inbox_prefix=inbox_prefix(OPERATOR),
            tls=client_context(TlsFiles(ca_file=server.files(OPERATOR).ca_file)),
            events=events,
            stopping=stop,
        )
        try:
            server.server.stop()

            async def messages() -> list[str]:
                return [r.getMessage() for r in caplog.records]

            await eventually(
                messages,
                until=lambda m: any("cannot reach NATS" in line for line in m),
                what="a reconnect attempt to the stopped server",
            )
        finally:
            events.closing = True
            await nc.close()
    logged = [r.getMessage() for r in caplog.records]
    assert not [line for line in logged if "certificate" in line], logged
    assert not [r for r in caplog.records if r.name == "asyncio"], logged


async def test_a_service_that_must_use_tls_waits_for_a_server_with_it_and_says_so(
    nats_server: AuthenticatedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Given a URL with a password in it, as the suite's server hands out: never logged."""
    probe: Service[RuntimeSettings] = Service("tls-insisting-probe")
    settings = load_settings(
        RuntimeSettings,
        environ={},
        service=probe.name,
        nats_url=nats_server.client_url,
        nats_tls_ca_file=local_ca(tmp_path),
    )
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="waybill.bus"):
        serving = asyncio.create_task(probe.serve(settings, stop))
        try:

            async def refusals() -> list[str]:
                return [r.getMessage() for r in caplog.records if "offers no TLS" in r.getMessage()]

            lines = await eventually(refusals, what="the service saying the server has no TLS")
        finally:
            stop.set()
            await serving
    assert lines[0].startswith(f"NATS at {nats_server.bare_url} offers no TLS")
    assert "harness:" not in "".join(r.getMessage() for r in caplog.records)
    assert "WAYBILL_NATS_TLS_CA_FILE" in lines[0] and "\n" not in lines[0]


def test_waybill_up_with_an_external_server_gives_the_demo_the_tls_files_of_the_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = LocalStack(
        EmbeddedNatsOptions(state_dir=tmp_path),
        external_nats_url="tls://nats.example:4222",
        services={},
        sandboxes={},
    )
    monkeypatch.delenv("WAYBILL_NATS_TLS_CA_FILE", raising=False)
    assert stack.client_tls(OPERATOR) is None
    monkeypatch.setenv("WAYBILL_NATS_TLS_CA_FILE", local_ca(tmp_path / "ca"))
    context = stack.client_tls(OPERATOR)
    assert context is not None and demands_tls(context)
    # The embedded server without --tls: no TLS, whatever the environment says.
    embedded = LocalStack(EmbeddedNatsOptions(state_dir=tmp_path), services={}, sandboxes={})
    assert embedded.client_tls(OPERATOR) is None


def test_messages_name_a_nats_url_without_its_password() -> None:
    assert (
        shown_url("nats://harness:s3cret@127.0.0.1:4222, tls://u:p@nats.example:4443")
        == "nats://127.0.0.1:4222,tls://nats.example:4443"
    )
    assert shown_url("tls://nats.example:4443") == "tls://nats.example:4443"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: nothing answers there
        with pytest.raises(UserFacingError) as unreachable:
            check_nats_reachable(f"nats://harness:s3cret@127.0.0.1:{port}")
    assert f"cannot reach NATS at nats://127.0.0.1:{port} (" in str(unreachable.value)
    assert "s3cret" not in str(unreachable.value)
