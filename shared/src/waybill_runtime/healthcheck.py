"""`python -m waybill_runtime.healthcheck`: a container's health check of its service.

Asks the service for ``/healthz`` on the address and port it listens on, read
from ``WAYBILL_HTTP_HOST`` and ``WAYBILL_HTTP_PORT`` as the service reads them,
so an image whose port is set by its environment stays healthy. Exits 0 when
the service answers 200, else 1 with one line saying why. It runs every few
seconds, so it imports nothing but the standard library and the settings.
"""

from __future__ import annotations

import http.client
import os
import sys
from collections.abc import Mapping

import msgspec

from waybill_runtime.settings import RuntimeSettings, env_var_name

__all__ = ["health_url", "main"]

# A service listening on every address is asked on the loopback one.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def _default(name: str) -> str:
    field = next(f for f in msgspec.structs.fields(RuntimeSettings) if f.name == name)
    return str(field.default)


def health_url(environ: Mapping[str, str] = os.environ, *, path: str = "/healthz") -> str:
    """The URL of the service's ``path`` in this container."""
    host = environ.get(env_var_name("http_host"), _default("http_host")).strip()
    host = _WILDCARDS.get(host, host)
    port = environ.get(env_var_name("http_port"), "").strip() or _default("http_port")
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def check(url: str, *, timeout_s: float = 2.0) -> str | None:
    """None when ``url`` answers 200; otherwise why not, in one line."""
    parts = url.removeprefix("http://").split("/", 1)
    address, path = parts[0], "/" + (parts[1] if len(parts) > 1 else "")
    host, _, port = address.rpartition(":")
    try:
        connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout_s)
        try:
            connection.request("GET", path)
            status = connection.getresponse().status
        finally:
            connection.close()
    except (OSError, ValueError, http.client.HTTPException) as error:
        return f"{url}: {error}"
    return None if status == 200 else f"{url} answered {status}"


def main() -> int:
    problem = check(health_url())
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
