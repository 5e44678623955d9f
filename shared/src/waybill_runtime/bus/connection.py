"""Connecting to NATS: retry the first connection, reconnect forever, say what is wrong.

nats-py gives up on an initial connection after one round of the server
list; a service started before its NATS (a normal event on Kubernetes) must
instead wait for it, logging one line per attempt that names the URL and
what to check. Once connected, reconnects are unlimited with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client as NatsClient

from waybill_runtime.bus.client import WaybillNatsClient, shown_url
from waybill_runtime.cancellation import cancel_and_wait
from waybill_runtime.security.tls import TlsFiles, client_context, explain_tls_failure

if TYPE_CHECKING:
    from waybill_runtime.settings import RuntimeSettings

log = logging.getLogger("waybill.bus")

_NATS_PY_INBOX_PREFIX = "_INBOX"


class ConnectionEvents:
    """Callbacks nats-py calls on connection changes; other components subscribe to them."""

    def __init__(self, url: str = "") -> None:
        self.url = shown_url(url)  # for messages: no user or password
        self.tls: ssl.SSLContext | None = None  # the connection's context, to explain failures
        self.closing = False  # set before a deliberate drain, so it is not reported as a loss
        self.connected = False

    async def on_disconnected(self) -> None:
        self.connected = False
        if not self.closing:
            log.warning("disconnected from NATS; reconnecting")

    async def on_reconnected(self) -> None:
        self.connected = True
        log.info("reconnected to NATS")

    async def on_error(self, error: Exception) -> None:
        reason = str(error) or type(error).__name__
        # A connection closed while connecting may be a server that wants a client
        # certificate; one closed while connected is a server going away.
        explained = explain_tls_failure(
            error, self.url, tls=self.tls if not self.connected else None
        )
        if explained is not None:
            log.warning("%s", explained)
        elif isinstance(error, OSError):
            # Nothing answers at the URL: say what to check, once per attempt.
            log.warning(
                "cannot reach NATS at %s (%s); retrying — check NATS_URL and that the server runs",
                self.url,
                reason,
            )
        else:
            log.warning("NATS connection error: %s", reason)

    async def on_lame_duck(self) -> None:
        # The server is about to shut down and will move clients away; nats-py
        # reconnects elsewhere by itself, consumers just keep fetching.
        log.warning("NATS server entered lame-duck mode; clients will move to another server")


async def connect(
    url: str,
    *,
    name: str,
    credentials_file: str | None = None,
    nkey_seed_file: str | None = None,
    inbox_prefix: str | None = None,
    tls: ssl.SSLContext | None = None,
    events: ConnectionEvents | None = None,
    first_attempt_timeout_s: int = 5,
    max_wait_between_attempts_s: float = 10.0,
    stopping: asyncio.Event | None = None,
) -> NatsClient:
    """Connect to ``url``; retry the first connection until it works or ``stopping`` is set."""
    events = events or ConnectionEvents(url)
    events.url = events.url or shown_url(url)
    shown = events.url
    events.tls = tls
    delay = 0.5
    attempt = 0
    while True:
        attempt += 1
        client = WaybillNatsClient()
        attempt_task = asyncio.ensure_future(
            client.connect(
                url,
                name=name,
                user_credentials=credentials_file,
                nkeys_seed=nkey_seed_file,
                tls=tls,
                # Replies come to the identity's own prefix, the only inboxes its
                # permissions let it subscribe to (nats-py's default is _INBOX).
                inbox_prefix=inbox_prefix or _NATS_PY_INBOX_PREFIX,
                connect_timeout=first_attempt_timeout_s,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                disconnected_cb=events.on_disconnected,
                reconnected_cb=events.on_reconnected,
                error_cb=events.on_error,
                lame_duck_mode_cb=events.on_lame_duck,
            )
        )
        # nats-py may keep retrying inside connect(); a stop request must still
        # end the wait (SIGTERM while NATS is down exits at once).
        waiters: set[asyncio.Future[Any]] = {attempt_task}
        stop_wait = asyncio.ensure_future(stopping.wait()) if stopping is not None else None
        if stop_wait is not None:
            waiters.add(stop_wait)
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if stop_wait is not None and stop_wait.done() and not attempt_task.done():
            await cancel_and_wait(attempt_task)
            with contextlib.suppress(Exception):
                await client.close()
            raise StoppedBeforeConnected(f"stopped before NATS at {shown} was reachable")
        if stop_wait is not None:
            stop_wait.cancel()
        try:
            attempt_task.result()
            events.connected = True
            return client
        except Exception as error:  # nats-py raises several unrelated types here
            reason = str(error) or type(error).__name__
            explained = explain_tls_failure(error, shown, tls=tls)
            if explained is not None:
                log.error("%s (attempt %d, retrying in %.0f s)", explained, attempt, delay)
            elif "authorization" in reason.lower():
                log.error(
                    "NATS at %s refused this identity (%s), attempt %d: retrying in %.0f s; "
                    "check WAYBILL_NATS_NKEY_SEED_FILE or WAYBILL_NATS_CREDENTIALS_FILE",
                    shown,
                    reason,
                    attempt,
                    delay,
                )
            else:
                log.error(
                    "cannot reach NATS at %s (%s), attempt %d: retrying in %.0f s; "
                    "check NATS_URL and that the server is running",
                    shown,
                    reason,
                    attempt,
                    delay,
                )
        if stopping is not None:
            try:
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            except TimeoutError:
                pass
            else:
                raise StoppedBeforeConnected(f"stopped before NATS at {shown} was reachable")
        else:
            await asyncio.sleep(delay)
        delay = min(delay * 2, max_wait_between_attempts_s)


def tls_context(settings: RuntimeSettings) -> ssl.SSLContext | None:
    """The one SSLContext of a service's NATS connection (None: no TLS settings).

    Raises a one-line :class:`~waybill_runtime.security.tls.TlsSettingsError`
    naming the variable when the files are not a usable CA, certificate or key.
    """
    return client_context(
        TlsFiles(
            ca_file=settings.nats_tls_ca_file,
            cert_file=settings.nats_tls_cert_file,
            key_file=settings.nats_tls_key_file,
        )
    )


class StoppedBeforeConnected(Exception):
    """The service was asked to stop while it was still waiting for NATS."""
