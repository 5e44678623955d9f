"""Port checks for the local stack: free ports and one clear error for a taken one."""

from __future__ import annotations

import socket

from waybill_runtime.errors import UserFacingError


class PortInUseError(UserFacingError):
    """A port Waybill was told to listen on is taken by another program."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


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
