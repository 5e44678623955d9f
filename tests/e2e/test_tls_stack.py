"""`waybill up --tls` / `--mtls` end to end: the real stack (embedded NATS with the local CA,
every service and sandbox as its own process) ships demo orders over TLS, and the server
turns away a client that speaks plaintext."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.foundation.processes import wait_until_no_nats_server

WAYBILL = [sys.executable, "-m", "waybill_runtime"]


def _plaintext_conversation(host: str, port: int) -> tuple[bytes, bytes]:
    """What the server says first, and what it answers a plaintext CONNECT and PING."""
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.settimeout(10)
        info = raw.recv(4096)
        raw.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return info, answer


@pytest.mark.long  # the whole stack twice (TLS, mutual TLS): make long
@pytest.mark.timeout(400)
@pytest.mark.parametrize("tls_flag", ["--tls", "--mtls"])
def test_up_with_tls_ships_orders_and_refuses_plaintext(tmp_path: Path, tls_flag: str) -> None:
    proc = subprocess.Popen(
        [
            *WAYBILL,
            "up",
            tls_flag,
            "--demo",
            "--orders",
            "2",
            "--timeout",
            "180",
            "--port",
            "0",
            "--monitor-port",
            "0",
            "--state-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output: list[str] = []
    try:
        url = ""
        for line in proc.stdout:
            output.append(line)
            if line.startswith("NATS client URL:"):
                url = line.split(":", 1)[1].strip()
                break
        assert url.startswith("tls://"), "".join(output)
        # The demo is running now: a plaintext client is turned away.
        address = urlsplit(url)
        assert address.hostname is not None and address.port is not None
        info, answer = _plaintext_conversation(address.hostname, address.port)
        assert b'"tls_required":true' in info, info
        assert b"PONG" not in answer, answer
        output.extend(proc.stdout)
        assert proc.wait(timeout=60) == 0, "".join(output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    printed = "".join(output)
    assert "2 of 2 orders reached their expected end state" in printed, printed
    assert re.search(r"^WH/OUT/\d+\s+shipped\s+carrier-\w\s+\S+\s+done\s.*\syes\s*$", printed, re.M)
    mutual = ", client certificates required" if tls_flag == "--mtls" else ""
    assert f"{tmp_path / 'nats' / 'tls' / 'ca.pem'} (TLS on{mutual})" in printed
    # No noise from TLS connections closing, in the command or any service's log.
    logs = [printed, *(log.read_text() for log in (tmp_path / "logs").glob("*.log"))]
    assert not [log for log in logs if "eof_received" in log]
    assert wait_until_no_nats_server(tmp_path) == []
