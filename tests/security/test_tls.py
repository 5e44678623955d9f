"""TLS on the bus: the embedded server with the local CA (identities on, as `waybill up
--tls`), clients with and without the CA, mutual TLS, a service running as itself with the
TLS settings, and one-line errors for bad settings."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from waybill_runtime.errors import UserFacingError
from waybill_runtime.security.local_ca import ensure_local_pki
from waybill_runtime.security.permissions import OPERATOR
from waybill_runtime.security.tls import (
    TlsFiles,
    TlsSettingsError,
    client_context,
    explain_tls_failure,
)
from waybill_runtime.service import Service
from waybill_runtime.settings import RuntimeSettings, SettingsError, load_settings
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.tls import (
    TlsNats,
    connect_over_tls,
    provision_over_tls,
    start_tls_server,
)


def _server(tmp_path_factory: pytest.TempPathFactory, *, mutual: bool) -> Iterator[TlsNats]:
    started = start_tls_server(tmp_path_factory.mktemp("nats-tls"), mutual=mutual)
    try:
        yield started
    finally:
        started.server.stop()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNats]:
    yield from _server(tmp_path_factory, mutual=False)


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNats]:
    yield from _server(tmp_path_factory, mutual=True)


async def _refused(url: str, **options: object) -> BaseException:
    """The error a single connection attempt to ``url`` ends with."""
    errors: list[BaseException] = []

    async def record(error: Exception) -> None:
        errors.append(error)

    with pytest.raises(Exception) as raised:
        nc = await nats.connect(
            url,
            connect_timeout=3,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=record,
            **options,
        )
        await nc.close()
    return errors[0] if errors else raised.value


def test_the_local_ca_is_reused_and_its_keys_are_private(tmp_path: Path) -> None:
    pki = ensure_local_pki(tmp_path, hosts=["127.0.0.1"], clients=["orchestrator"])
    files = [pki.ca_file, pki.server_cert_file, pki.client_cert_file("orchestrator")]
    before = {path: path.read_bytes() for path in files}
    for key in (pki.ca_key_file, pki.server_key_file, pki.client_key_file("orchestrator")):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = ensure_local_pki(tmp_path, hosts=["127.0.0.1"], clients=["orchestrator"])
    assert {path: path.read_bytes() for path in files} == before
    # A server certificate that does not name a new host is replaced, signed by the same CA.
    ensure_local_pki(tmp_path, hosts=["nats.example"], clients=["orchestrator"])
    assert again.ca_file.read_bytes() == before[pki.ca_file]
    assert pki.server_cert_file.read_bytes() != before[pki.server_cert_file]
    # A broken key is made anew rather than handed to the server.
    pki.server_key_file.write_text("garbage")
    ensure_local_pki(tmp_path, hosts=["127.0.0.1"])
    assert client_context(TlsFiles(ca_file=str(pki.ca_file))) is not None
    assert "BEGIN PRIVATE KEY" in pki.server_key_file.read_text()


async def test_tls_server_accepts_a_client_with_the_ca_and_refuses_others(
    tls_server: TlsNats,
) -> None:
    server = tls_server.server
    assert server.client_url.startswith("tls://")
    nc = await connect_over_tls(tls_server, OPERATOR)
    try:
        assert nc.is_connected
        await nc.flush()
    finally:
        await nc.close()
    # No CA: the client does not trust the local CA, and is told what to set.
    plain_url = server.client_url.replace("tls://", "nats://")
    error = await _refused(plain_url)
    explained = explain_tls_failure(error, plain_url)
    assert explained is not None
    assert "does not trust" in explained and "WAYBILL_NATS_TLS_CA_FILE" in explained
    # A client that speaks plain NATS is turned away by the server.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        info = raw.recv(4096)
        assert b'"tls_required":true' in info
        raw.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        raw.settimeout(5)
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        assert b"PONG" not in answer


async def test_mtls_server_refuses_a_client_without_a_certificate(
    mtls_server: TlsNats,
) -> None:
    server, local_tls = mtls_server.server, mtls_server.local_tls
    nc = await connect_over_tls(mtls_server, OPERATOR)
    try:
        await nc.flush()
    finally:
        await nc.close()
    ca_only = client_context(TlsFiles(ca_file=str(local_tls.pki.ca_file)))
    error = await _refused(server.client_url, tls=ca_only)
    explained = explain_tls_failure(error, server.client_url, tls=ca_only)
    assert explained is not None, repr(error)
    assert "requires a client certificate" in explained, explained
    assert "WAYBILL_NATS_TLS_CERT_FILE" in explained, explained


async def test_a_service_runs_as_itself_over_mutual_tls(mtls_server: TlsNats) -> None:
    await provision_over_tls(mtls_server)
    bridge: Service[RuntimeSettings] = Service("wms-bridge")
    async with running_service(bridge, **mtls_server.service_settings("wms-bridge")):
        assert mtls_server.tls_versions()["wms-bridge"].startswith("1.")


def test_bad_tls_settings_give_one_line_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(SettingsError) as error:
        load_settings(
            RuntimeSettings, {"WAYBILL_SERVICE": "x", "WAYBILL_NATS_TLS_CA_FILE": missing}
        )
    assert str(error.value).startswith("WAYBILL_NATS_TLS_CA_FILE=")
    assert "no such file" in str(error.value) and "\n" not in str(error.value)

    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    with pytest.raises(TlsSettingsError, match=r"^WAYBILL_NATS_TLS_CA_FILE=.*not a PEM CA") as bad:
        client_context(TlsFiles(ca_file=str(not_pem)))
    assert "\n" not in str(bad.value)

    pki = ensure_local_pki(tmp_path, hosts=[], clients=["a", "b"])
    with pytest.raises(TlsSettingsError, match="CERT_FILE is set but WAYBILL_NATS_TLS_KEY_FILE"):
        client_context(TlsFiles(cert_file=str(pki.client_cert_file("a"))))
    with pytest.raises(TlsSettingsError, match="not a PEM certificate and its matching key"):
        client_context(
            TlsFiles(
                cert_file=str(pki.client_cert_file("a")), key_file=str(pki.client_key_file("b"))
            )
        )
    assert isinstance(TlsSettingsError("x"), UserFacingError)
    assert os.path.isfile(pki.ca_file)
