"""`waybill provision` (as the admin) and `waybill dlq` (as the operator) over TLS and mutual TLS,
on a real nats-server with the mesh's identities on: with the state folder's files, with
options, with variables and a nats:// URL; and each way it can go wrong, in one line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.bus_helpers import release_command, send
from tests.security.test_commands_as_identities import failing_bridge
from waybill_runtime.cli.identity import connect_identity
from waybill_runtime.errors import UserFacingError
from waybill_runtime.security.local_ca import ensure_local_pki
from waybill_runtime.security.permissions import ADMIN, OPERATOR
from waybill_runtime.testing.secured import SecuredNats
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.streams import dead_letters
from waybill_runtime.testing.tls import TlsNats, connect_over_tls
from waybill_runtime.testing.waiting import eventually

WAYBILL_NATS = [sys.executable, "-m", "waybill_runtime", "nats"]
_NATS_VARIABLES = (
    "NATS_URL",
    "WAYBILL_SUBJECT_PREFIX",
    "WAYBILL_STATE_DIR",
    "WAYBILL_NATS_NKEY_SEED_FILE",
    "WAYBILL_NATS_CREDENTIALS_FILE",
    "WAYBILL_NATS_TLS_CA_FILE",
    "WAYBILL_NATS_TLS_CERT_FILE",
    "WAYBILL_NATS_TLS_KEY_FILE",
)


def run_waybill(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`waybill ARGS` with only the NATS variables of ``env`` (none from the shell)."""
    clean = {k: v for k, v in os.environ.items() if k not in _NATS_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "waybill_runtime", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


async def waybill(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_waybill, *args, env=env)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command's error, checked to be one line and no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


async def test_provision_and_dlq_over_mutual_tls_with_the_state_folder_files(
    mtls_nats: TlsNats,
) -> None:
    """Against `waybill up --mtls`'s state folder the commands need no option at all."""
    env = {
        "NATS_URL": mtls_nats.url,
        "WAYBILL_SUBJECT_PREFIX": mtls_nats.prefix,
        "WAYBILL_STATE_DIR": str(mtls_nats.state_dir),
    }
    provisioned = await waybill("provision", env=env)
    assert provisioned.returncode == 0, provisioned.stderr
    assert "provisioned" in provisioned.stdout
    fixed: set[str] = set()
    processed: list[str] = []
    orchestrator = await connect_over_tls(mtls_nats, "orchestrator")
    admin = await connect_over_tls(mtls_nats, ADMIN)
    try:
        async with running_service(
            failing_bridge(fixed, processed), **mtls_nats.service_settings("wms-bridge")
        ):
            await send(orchestrator, mtls_nats.subjects, release_command("WH/OUT/TLS1"))
            await eventually(
                lambda: dead_letters(admin, mtls_nats.subjects),
                until=lambda letters: len(letters) == 1,
                what="the dead letter",
            )
            listed = await waybill("dlq", "list", "--json", env=env)
            assert listed.returncode == 0, listed.stderr
            rows = [json.loads(line) for line in listed.stdout.splitlines()]
            assert [row["letter"]["service"] for row in rows] == ["wms-bridge"]
            fixed.add("WH/OUT/TLS1")
            replayed = await waybill("dlq", "replay", "--all", "--operator", "tls-test", env=env)
            assert replayed.returncode == 0, replayed.stderr
            assert "1 dead letter(s) replayed" in replayed.stdout

            async def handled() -> list[str]:
                return processed

            await eventually(handled, until=lambda p: p == ["WH/OUT/TLS1"], what="the replay")
        assert await dead_letters(admin, mtls_nats.subjects) == []
    finally:
        await orchestrator.close()
        await admin.close()


async def test_commands_over_tls_with_options_or_variables_and_a_nats_url(
    tls_nats: TlsNats, tmp_path: Path
) -> None:
    """With another state folder: the files come from options, or from the variables,
    and a nats:// URL still ends in TLS (the server takes nothing else)."""
    ca = str(tls_nats.files(ADMIN).ca_file)
    assert tls_nats.security is not None
    env = {"WAYBILL_SUBJECT_PREFIX": tls_nats.prefix, "WAYBILL_STATE_DIR": str(tmp_path)}
    provisioned = await waybill(
        "provision",
        "--nats-url",
        tls_nats.url,
        "--tls-ca-file",
        ca,
        "--nkey-seed-file",
        str(tls_nats.security.seed_file(ADMIN)),
        env=env,
    )
    assert provisioned.returncode == 0, provisioned.stderr
    listed = await waybill(
        "dlq",
        "list",
        env={**env, **tls_nats.environment(OPERATOR), "NATS_URL": tls_nats.plain_url},
    )
    assert listed.returncode == 0, listed.stderr
    assert "0 dead letter(s)" in listed.stdout


async def test_commands_say_in_one_line_what_tls_file_is_missing_or_wrong(
    tls_nats: TlsNats, mtls_nats: TlsNats, tmp_path: Path
) -> None:
    assert tls_nats.security is not None and mtls_nats.security is not None
    empty = tmp_path / "empty-state"
    empty.mkdir()
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    other = ensure_local_pki(tmp_path / "other", hosts=[], clients=[OPERATOR])

    def env_of(server: TlsNats) -> dict[str, str]:
        assert server.security is not None
        return {
            "NATS_URL": server.url,
            "WAYBILL_SUBJECT_PREFIX": server.prefix,
            "WAYBILL_STATE_DIR": str(empty),
            "WAYBILL_NATS_NKEY_SEED_FILE": str(server.security.seed_file(OPERATOR)),
        }

    mtls_ca = str(mtls_nats.files(OPERATOR).ca_file)
    cases = {
        "no CA": waybill("dlq", "list", env=env_of(tls_nats)),
        "another CA": waybill(
            "dlq", "list", "--tls-ca-file", str(other.ca_file), env=env_of(tls_nats)
        ),
        "no client certificate": waybill(
            "dlq", "list", "--tls-ca-file", mtls_ca, env=env_of(mtls_nats)
        ),
        "untrusted client certificate": waybill(
            "dlq",
            "list",
            "--tls-ca-file",
            mtls_ca,
            "--tls-cert-file",
            str(other.client_cert_file(OPERATOR)),
            "--tls-key-file",
            str(other.client_key_file(OPERATOR)),
            env=env_of(mtls_nats),
        ),
        "not a CA": waybill("dlq", "list", "--tls-ca-file", str(not_pem), env=env_of(tls_nats)),
        "no such file": waybill(
            "provision",
            env={**env_of(tls_nats), "WAYBILL_NATS_TLS_CA_FILE": str(tmp_path / "nope.pem")},
        ),
        "certificate without key": waybill(
            "dlq",
            "list",
            "--tls-ca-file",
            mtls_ca,
            "--tls-cert-file",
            str(mtls_nats.files(OPERATOR).cert_file),
            env=env_of(mtls_nats),
        ),
    }
    results = dict(zip(cases, await asyncio.gather(*cases.values()), strict=True))
    errors = {case: one_line_error(result) for case, result in results.items()}
    assert "presented a certificate this client does not trust" in errors["no CA"]
    assert "set WAYBILL_NATS_TLS_CA_FILE (or --tls-ca-file)" in errors["no CA"]
    assert "does not trust" in errors["another CA"]
    for case in ("no client certificate", "untrusted client certificate"):
        assert "requires a client certificate it trusts" in errors[case], errors[case]
        assert "--tls-cert-file and --tls-key-file" in errors[case]
    assert errors["not a CA"].startswith(f"waybill: error: --tls-ca-file={str(not_pem)!r} is not")
    assert "not a PEM CA certificate" in errors["not a CA"]
    assert "WAYBILL_NATS_TLS_CA_FILE=" in errors["no such file"]
    assert "no such file" in errors["no such file"]
    assert "--tls-cert-file is set but" in errors["certificate without key"]


async def test_commands_insist_on_tls_they_were_asked_for_but_not_on_a_leftover_local_ca(
    secured_nats: SecuredNats, tmp_path: Path
) -> None:
    """A plaintext server: --tls-ca-file is refused (it would be plaintext); a CA only left in
    the state folder by an earlier `waybill up --tls` is not in the way."""
    ensure_local_pki(tmp_path, hosts=[], clients=[OPERATOR])
    env = {
        "NATS_URL": secured_nats.url,
        "WAYBILL_SUBJECT_PREFIX": secured_nats.prefix,
        "WAYBILL_STATE_DIR": str(tmp_path),
        "WAYBILL_NATS_NKEY_SEED_FILE": str(secured_nats.security.seed_file(OPERATOR)),
    }
    ca = str(tmp_path / "nats" / "tls" / "ca.pem")
    admin_seed = str(secured_nats.security.seed_file(ADMIN))
    asked, provisioned = await asyncio.gather(
        waybill("dlq", "list", "--tls-ca-file", ca, env=env),
        waybill("provision", "--nkey-seed-file", admin_seed, env=env),
    )
    refused = one_line_error(asked)
    assert f"NATS at {secured_nats.url} offers no TLS but this client must use TLS" in refused
    assert "nothing was sent" in refused
    assert provisioned.returncode == 0, provisioned.stderr
    listed = await waybill("dlq", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "0 dead letter(s)" in listed.stdout


def test_waybill_nats_with_mtls_provisions_and_serves_the_commands(tmp_path: Path) -> None:
    """`waybill nats --mtls`: the admin provisions over mutual TLS at start; `waybill dlq`
    then needs only the state folder and the printed URL."""
    env = {"WAYBILL_STATE_DIR": str(tmp_path), "WAYBILL_SUBJECT_PREFIX": "tlsnats"}
    clean = {k: v for k, v in os.environ.items() if k not in _NATS_VARIABLES}
    server = subprocess.Popen(
        [*WAYBILL_NATS, "--mtls", "--port", "0", "--monitor-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean, **env},
    )
    assert server.stdout is not None
    printed: dict[str, str] = {}
    try:
        for line in server.stdout:
            name, _, value = line.partition(":")
            printed[name.strip()] = value.strip()
            if name.startswith("  run a service as itself"):
                break
        url = printed.get("NATS client URL", "")
        assert url.startswith("tls://"), printed
        assert printed["NATS TLS CA"].startswith(str(tmp_path / "nats" / "tls" / "ca.pem"))
        assert "WAYBILL_NATS_TLS_CERT_FILE" in printed["client certificates"]
        listed = run_waybill("dlq", "list", env={**env, "NATS_URL": url})
        assert listed.returncode == 0, listed.stderr
        assert "0 dead letter(s)" in listed.stdout
    finally:
        server.terminate()
        assert server.wait(timeout=60) == 0


async def test_a_server_cutting_the_connection_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"CUT","version":"2.10.0","proto":1}\r\n')
        await writer.drain()
        await reader.readline()  # the CONNECT
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.transport.abort()  # a reset, not a goodbye

    listener = await asyncio.start_server(cut, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    monkeypatch.setenv("WAYBILL_STATE_DIR", str(tmp_path))
    args = argparse.Namespace(
        identity=OPERATOR,
        nkey_seed_file=None,
        credentials_file=None,
        tls_ca_file=None,
        tls_cert_file=None,
        tls_key_file=None,
    )
    try:
        with pytest.raises(UserFacingError) as refused:
            await connect_identity(args, f"nats://127.0.0.1:{port}", error_cb=_ignore)
    finally:
        listener.close()
        await listener.wait_closed()
    assert str(refused.value).startswith(
        f"NATS at nats://127.0.0.1:{port} closed the connection while this command connected"
    )
    assert "check the URL and the server's log" in str(refused.value)


async def _ignore(error: Exception) -> None:
    """The test looks at the raised error, not at what nats-py reports on the way."""
