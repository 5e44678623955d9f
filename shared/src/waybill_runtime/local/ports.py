"""Port checks for the local stack: free ports and one clear error for a taken one."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from waybill_runtime.errors import UserFacingError


class PortInUseError(UserFacingError):
    """A port Waybill was told to listen on is taken by another program."""


# Where free ports are looked for when the OS's ephemeral range leaves room below it.
_LOWEST_PORT = 10000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def _below_ephemeral_range() -> range | None:
    """Ports the kernel never gives to outgoing connections, or None if there is no room.

    A port picked with bind(("", 0)) comes from the ephemeral range and is free
    only until it is bound again: any outgoing connection (a client reaching
    nats-server, a test's HTTP call) may take it first, which on a busy machine
    made a planned listener fail with "already in use". Below that range only
    another listener can take a port.
    """
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default; macOS's range starts higher still
    return range(_LOWEST_PORT, low) if low - _LOWEST_PORT >= 1000 else None


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on right now and that this process has not handed out.

    Chosen at random below the ephemeral range (see :func:`_below_ephemeral_range`),
    so neither outgoing connections nor another plan picking at the same time
    is likely to take it before its listener binds it; the OS picks one when
    there is no room below that range.
    """
    candidates = _below_ephemeral_range()
    if candidates is not None:
        for _ in range(100):
            port = random.choice(candidates)
            if port not in _handed_out and _bindable(host, port):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        chosen: int = probe.getsockname()[1]
        return chosen


def ensure_port_free(host: str, port: int, *, what: str, option: str) -> None:
    """Raise :class:`PortInUseError` naming the port when something listens on it.

    SO_REUSEADDR mirrors what servers such as nats-server set, so a port held
    only by a closing connection (TIME_WAIT) is not reported as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUseError(
                f"port {port} on {host} is already in use ({error.strerror}), so {what} cannot "
                f"listen there: stop the program using it, or choose another port with {option} "
                "(0 picks a free one)"
            ) from None
