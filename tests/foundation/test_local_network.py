"""The local stack's network checks: free ports for its listeners (never one an outgoing
connection may take first, never the same one twice, never one something listens on), and
whether NATS answers at a URL (one server or a cluster's list)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from waybill_runtime.local import ports
from waybill_runtime.local.ports import free_port
from waybill_runtime.local.stack import NatsUnreachableError, check_nats_reachable


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


@pytest.mark.skipif(
    not Path("/proc/sys/net/ipv4/ip_local_port_range").exists(), reason="Linux only"
)
def test_ports_come_from_below_the_ephemeral_range_and_are_never_repeated() -> None:
    chosen = [free_port() for _ in range(200)]
    assert len(set(chosen)) == len(chosen)
    assert all(p < _ephemeral_low() for p in chosen)


def test_a_port_something_listens_on_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Only that port below the "ephemeral range": the search must fall back to the OS.
        monkeypatch.setattr(ports, "_below_ephemeral_range", lambda: range(port, port + 1))
        assert free_port() != port


def test_without_room_below_the_ephemeral_range_the_os_picks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    narrow = tmp_path / "ip_local_port_range"
    narrow.write_text("10500\t60999\n")
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", narrow)
    assert ports._below_ephemeral_range() is None
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", port))  # it really was free


def test_a_cluster_url_is_reachable_when_one_of_its_servers_is() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        up = server.getsockname()[1]
        down = free_port()
        check_nats_reachable(f"tls://127.0.0.1:{down},tls://127.0.0.1:{up}")
        with pytest.raises(NatsUnreachableError, match=f"127.0.0.1:{down}"):
            check_nats_reachable(f"nats://127.0.0.1:{down}, nats://127.0.0.1:{free_port()}")


def test_a_url_whose_port_is_not_a_number_is_named() -> None:
    with pytest.raises(NatsUnreachableError, match="nats://host:port, several separated by"):
        check_nats_reachable("nats://127.0.0.1:42x2")
