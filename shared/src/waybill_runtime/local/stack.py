"""The local stack behind `waybill up`: embedded NATS (or an external one) and the services.

Every service runs as its own process, as it would in a container, so the
local stack exercises the same process boundaries as a Kubernetes deployment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from waybill_runtime.errors import UserFacingError
from waybill_runtime.local import child_process
from waybill_runtime.local.embedded_nats import EmbeddedNats, EmbeddedNatsOptions
from waybill_runtime.local.registry import installed_services


class NatsUnreachableError(UserFacingError):
    """An external NATS URL that does not answer."""


def check_nats_reachable(url: str, *, timeout_s: float = 3.0) -> None:
    """Fail in one line when nothing accepts connections at ``url``."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise NatsUnreachableError(
            f"cannot reach NATS at {url} ({reason}): start a server there, fix the URL, "
            "or leave --nats-url out to use the embedded server"
        ) from None


@dataclass
class LocalStack:
    """NATS plus every installed service, each as a child process."""

    nats_options: EmbeddedNatsOptions
    external_nats_url: str | None = None
    services: list[str] = field(default_factory=installed_services)
    nats: EmbeddedNats | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def nats_url(self) -> str:
        if self.external_nats_url is not None:
            return self.external_nats_url
        assert self.nats is not None
        return self.nats.client_url

    @property
    def log_dir(self) -> Path:
        return self.nats_options.state_dir / "logs"

    def start(self) -> None:
        if self.external_nats_url is not None:
            check_nats_reachable(self.external_nats_url)
        else:
            self.nats = EmbeddedNats(self.nats_options)
            self.nats.start()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "NATS_URL": self.nats_url}
        for name in self.services:
            log = (self.log_dir / f"{name}.log").open("ab")
            self.children[name] = child_process.spawn(
                [sys.executable, "-m", "waybill_runtime", "run", name],
                env={**env, "WAYBILL_SERVICE": name},
                output=log,
            )
            log.close()  # the child holds its own descriptor

    def dead_children(self) -> list[str]:
        """Names of children that have exited (a running stack has none)."""
        dead = [name for name, proc in self.children.items() if proc.poll() is not None]
        if self.nats is not None and not self.nats.running():
            dead.append("nats-server")
        return dead

    def stop(self) -> None:
        # Services first (they drain into NATS), then NATS itself.
        threads = [
            threading.Thread(target=child_process.stop, args=(proc,), daemon=True)
            for proc in self.children.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.children.clear()
        if self.nats is not None:
            self.nats.stop()
