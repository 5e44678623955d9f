"""The NATS client the runtime connects with: nats-py's, with faster header handling.

Every Waybill message carries about ten CloudEvents headers. nats-py checks
each header name with a regular expression and rewrites each value with
``str.translate`` when it publishes, and tests each character of each name
in a Python generator when it receives: per message, that was one of the
largest single costs of the runtime (see docs/benchmarks.md).

The overrides produce exactly what nats-py produces (tests compare both,
byte for byte and dict for dict); they only do the work in fewer, C-level
steps: names are checked once and remembered, values are scanned for line
breaks in one pass over the whole block.

It also follows a rotated nkey seed (see docs/security.md, "Rotating and
revoking an identity"): nats-py reads the seed file at every (re)connect to
sign the server's nonce, but sends the public key it computed once at
``connect()``, so after the file changed a reconnect would sign with the new
key and claim the old one. Here the key sent is always the one that signed,
and a change of the file's key moves the connection to it
(``force_reconnect``) while the server accepts both.

And it never skips TLS it was asked for: nats-py starts TLS only when the
server's INFO requires it, so a client with TLS settings or a ``tls://`` URL
would talk plaintext to a server that merely offers TLS, or has none; here
it upgrades, or refuses the server before sending anything
(:func:`waybill_runtime.security.tls.insist_on_tls`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import ParseResult, urlparse

import nkeys
from nats.aio.client import Client, Srv
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.aio.transport import TcpTransport
from nats.errors import BadHeaderError, BadSubjectError

from waybill_runtime.security.tls import insist_on_tls

_CRLF = b"\r\n"
_WHITESPACE = re.compile(r"\s")
# RFC 7230 token characters: what nats-py (and the server) accept as a name.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAKS = str.maketrans({"\r": " ", "\n": " "})
_STATUS_LINE = "NATS/1.0\r\n"
# In a received header block: where a status would be (after "NATS/1.0"), and
# where the headers start when there is none (after "NATS/1.0\r\n").
_STATUS_AT = len("NATS/1.0")
_SPACE = ord(" ")
_HEADERS_AT = len(_STATUS_LINE)
# Names already checked, mapped to the start of their line (``"name: "``).
# Bounded: dead-letter replays carry arbitrary names, and this is a cache,
# not a registry. Blank names (which nats-py skips) are never cached.
_LINE_STARTS: dict[str, str] = {}
_MAX_CHECKED_NAMES = 1024
# What bytes.strip() strips (str.strip() would also strip \x1c-\x1f).
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
# Header names read off delivered messages (the text before a line's colon),
# mapped to the name nats-py makes of them; names it skips are not kept.
_READ_NAMES: dict[str, str] = {}
# How often a connection looks at its seed file for a rotated key.
SEED_CHECK_INTERVAL_S = 1.0

log = logging.getLogger("waybill.bus")


def _checked_name(name: str) -> str:
    """``name`` stripped ("" for a blank one); :class:`BadHeaderError` if it is no token."""
    stripped = name.strip()
    if stripped and not _HEADER_NAME.fullmatch(stripped):
        raise BadHeaderError(stripped)
    if stripped and len(_LINE_STARTS) < _MAX_CHECKED_NAMES:
        _LINE_STARTS[name] = f"{stripped}: "
    return stripped


def _checked_lines(headers: Mapping[str, str], *, replace_line_breaks: bool) -> list[str]:
    lines = []
    for name, value in headers.items():
        checked = _checked_name(name)
        if checked:
            value = value.strip()
            if replace_line_breaks:
                value = value.translate(_LINE_BREAKS)
            lines.append(f"{checked}: {value}\r\n")
    return lines


def header_block(headers: Mapping[str, str]) -> bytes:
    """The NATS header block for ``headers``, exactly as nats-py writes it.

    Names are stripped and must be tokens (:class:`BadHeaderError` if not),
    blank names are left out, values are stripped and their line breaks
    become spaces, so a value can never start a header of its own.
    """
    try:
        # The usual case, every name seen before: one comprehension, no call per header.
        lines = [f"{_LINE_STARTS[name]}{value.strip()}\r\n" for name, value in headers.items()]
    except KeyError:  # a name not seen yet (checked now, and remembered), or a blank one
        lines = _checked_lines(headers, replace_line_breaks=False)
    block = "".join(lines)
    # Every line ends in exactly one CR LF, unless a value holds a line break
    # (rare: then the values are cleaned one by one).
    if block.count("\n") != len(lines) or block.count("\r") != len(lines):
        block = "".join(_checked_lines(headers, replace_line_breaks=True))
    return f"{_STATUS_LINE}{block}\r\n".encode()


def _read_name(name: str) -> str | None:
    """The header name before a line's colon as nats-py reads it; None: nats-py skips it."""
    key = name.strip(_ASCII_WHITESPACE)
    if _WHITESPACE.search(key):
        return None
    if len(_READ_NAMES) < _MAX_CHECKED_NAMES:
        _READ_NAMES[name] = key
    return key


def _parse_header_bytes(raw: bytes) -> dict[str, str]:
    """nats-py's reading of a header block, line by line in bytes (for non-ASCII blocks)."""
    out: dict[str, str] = {}
    for line in raw.split(_CRLF):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if _WHITESPACE.search(key):
            continue
        out[key] = value.strip().decode("utf-8", "replace")
    return out


def _public_key_in(path: str) -> str | None:
    """The public key of the seed in ``path`` (None: unreadable or no seed)."""
    try:
        with open(path, "rb") as file:
            pair = nkeys.from_seed(bytearray(file.read().strip()))
    except Exception:  # nkeys raises its own, unrelated types
        return None
    try:
        return str(pair.public_key.decode())
    finally:
        pair.wipe()


class _TcpTransport(TcpTransport):
    """nats-py's TCP transport, whose stream knows when it has become TLS."""

    async def connect_tls(
        self,
        uri: str | ParseResult,
        ssl_context: ssl.SSLContext,
        buffer_size: int,
        connect_timeout: int,
    ) -> None:
        try:
            await super().connect_tls(uri, ssl_context, buffer_size, connect_timeout)
        except BaseException:
            # The plaintext stream's socket went to the failed TLS layer, and that
            # stream's close would never complete: nats-py would wait for it forever
            # (no retry, no close). Drop the socket; the next attempt makes a new one.
            if self._io_writer is not None:
                self._io_writer.transport.abort()
            self._io_reader = self._io_writer = None
            raise
        # nats-py upgrades with loop.start_tls, which never tells the new stream
        # protocol that it runs over TLS (asyncio's StreamWriter.start_tls does):
        # the protocol then answers the server's EOF as over plaintext, and asyncio
        # logs "returning true from eof_received() has no effect when using ssl"
        # at every close of every TLS connection.
        writer = self._io_writer
        replace_writer = getattr(getattr(writer, "_protocol", None), "_replace_writer", None)
        if replace_writer is not None:
            replace_writer(writer)


def _shown(uri: ParseResult) -> str:
    """``uri`` without a user or password, for messages."""
    return f"{uri.scheme}://{uri.netloc.rpartition('@')[2]}"


def shown_url(url: str) -> str:
    """A NATS URL (or a comma-separated list) without users or passwords, for messages."""
    return ",".join(
        _shown(urlparse(part)) if "://" in part and "@" in part else part
        for part in (piece.strip() for piece in url.split(","))
    )


class WaybillNatsClient(Client):
    """nats-py's client with faster header writing and parsing, rotated seeds, TLS insisted on."""

    # -- TLS -----------------------------------------------------------------

    async def _connect_to_server(self, s: Srv) -> None:
        await super()._connect_to_server(s)
        # nats-py makes its TcpTransport here (replacing any set before, which
        # is falsy until connected); ours differs only in connect_tls, next.
        if type(self._transport) is TcpTransport:
            self._transport.__class__ = _TcpTransport

    async def _process_info(self, info: dict[str, Any], initial_connection: bool = False) -> None:
        # Every (re)connection passes here with initial_connection=True right
        # before nats-py decides on TLS and sends CONNECT.
        if initial_connection and self._current_server is not None:
            uri = self._current_server.uri
            insist_on_tls(info, url=_shown(uri), scheme=uri.scheme, context=self.options.get("tls"))
        await super()._process_info(info, initial_connection)

    # -- headers -------------------------------------------------------------

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: bytes,
        payload_size: int,
        headers: dict[str, str] | None,
    ) -> None:
        if headers is None:
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            return
        if subject == "":
            raise BadSubjectError
        block = header_block(headers)
        header_size = len(block)
        command = b"".join(
            (
                f"HPUB {subject} {reply} {header_size} {header_size + payload_size}\r\n".encode(),
                block,
                payload,
                _CRLF,
            )
        )
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(command)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        if not raw.isascii():
            return _parse_header_bytes(raw)
        # ASCII, so what Waybill writes: one decode of the whole block, then
        # names as checked before (the same ten on every message).
        out: dict[str, str] = {}
        for line in raw.decode("ascii").split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = _READ_NAMES.get(name)
            if key is None:
                key = _read_name(name)
                if key is None:
                    continue
            out[key] = value.strip(_ASCII_WHITESPACE)
        return out

    # -- acks ------------------------------------------------------------------

    async def ack(self, msg: Msg) -> None:
        """Acknowledge ``msg``: what ``msg.ack()`` sends, in fewer steps.

        ``msg.ack()`` goes through ``publish``, which checks the subject with
        a regular expression, then builds the command in three steps; an ack
        is an empty message to the ack subject the server gave (no header,
        no payload; the server's subjects hold no white space), written here
        at once. Anything unusual (no ack subject, acked already, a connection
        not plainly connected: reconnecting, draining, closed) takes
        ``msg.ack()``'s way, which refuses or buffers as nats-py does.
        """
        reply = msg.reply
        if not reply or msg._ackd or self._status != Client.CONNECTED:
            await msg.ack()
            return
        self.stats["out_msgs"] += 1
        await self._send_command(f"PUB {reply} 0\r\n\r\n".encode())
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()
        msg._ackd = True

    # -- replies handed over as they arrive -------------------------------------

    _direct: dict[int, Callable[[Msg], None]] | None = None

    async def subscribe_direct(
        self, subject: str, on_message: Callable[[Msg], None]
    ) -> Subscription:
        """Subscribe to ``subject``, ``on_message`` called from the read loop.

        nats-py hands each message of a subscription to a queue, which a task of the
        subscription reads and passes to an ``async`` callback: a queue put, a task
        wake-up and a coroutine per message. For the runtime's replies (about a
        hundred an order, each a publish's or KV operation's answer), which only
        resolve a future, and for pull consumers' deliveries, which only start a
        handler's task, that was most of their cost here. ``on_message`` must be
        quick and must not block; what it raises is logged, never passed on (it
        would end the read loop). Resubscribed after a reconnect as any other;
        ``drain`` and ``unsubscribe`` work as on any subscription (what arrives
        before the server has the unsubscribe is still handed over).
        """
        sub = await self.subscribe(subject)
        if self._direct is None:
            self._direct = {}
        self._direct[sub._id] = on_message
        return sub

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        direct = self._direct
        on_message = direct.get(sid) if direct is not None else None
        if on_message is None:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        if sid not in self._subs:  # unsubscribed meanwhile
            del direct[sid]  # type: ignore[union-attr]
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        # (nats-py passes None for a message without headers.)
        # A message from the stream has no status in its header block: its
        # headers are read here, without nats-py's _process_headers coroutine;
        # a block with a status (a pull request's end, a heartbeat), or one the
        # parser stumbles on, goes nats-py's whole way, which reports errors.
        hdr: dict[str, str] | None
        if headers and len(headers) > _HEADERS_AT and headers[_STATUS_AT] != _SPACE:
            try:
                hdr = self._parse_header_lines(headers[_HEADERS_AT:]) or None
            except Exception:
                hdr = await self._process_headers(headers)
        else:
            hdr = await self._process_headers(headers)
        msg = self._build_message(sid, subject, reply, data, hdr)
        try:
            on_message(msg)
        except Exception:
            log.exception("a reply on %s could not be handed over", msg.subject)

    # -- nkey seed rotation ------------------------------------------------

    seed_check_interval_s: float = SEED_CHECK_INTERVAL_S
    _seed_watch: asyncio.Task[None] | None = None

    def _setup_nkeys_seed_connect(self) -> None:
        super()._setup_nkeys_seed_connect()
        if self._nkeys_seed_str or not self._nkeys_seed:
            return
        path = str(self._nkeys_seed)

        def sign_and_claim(nonce: str) -> bytes:
            # One read of the file both signs and names the key, so the two always agree.
            with open(path, "rb") as file:
                seed = bytearray(file.read().strip())
            pair = nkeys.from_seed(seed)
            try:
                self._public_nkey = pair.public_key.decode()
                return base64.b64encode(pair.sign(nonce.encode()))
            finally:
                pair.wipe()

        self._signature_cb = sign_and_claim

    def _setup_server_pool(self, connect_url: str | list[str]) -> None:
        # NATS_URL names a cluster as one comma-separated string; nats-py takes only a list.
        if isinstance(connect_url, str):
            connect_url = [s.strip() for s in connect_url.split(",") if s.strip()]
        super()._setup_server_pool(connect_url)

    async def connect(self, *args: Any, **kwargs: Any) -> None:
        await super().connect(*args, **kwargs)
        if self._nkeys_seed and not self._nkeys_seed_str and self._seed_watch is None:
            self._seed_watch = asyncio.create_task(
                self._follow_seed(str(self._nkeys_seed)), name="nats-seed-watch"
            )

    async def _follow_seed(self, path: str) -> None:
        """Reconnect with the seed's key when the file at ``path`` holds another one."""
        seen: tuple[int, int] | None = None
        while not self.is_closed:
            await asyncio.sleep(self.seed_check_interval_s)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # being replaced, or revoked: the server decides
            if (stat.st_mtime_ns, stat.st_ino) == seen:
                continue
            seen = (stat.st_mtime_ns, stat.st_ino)
            key = _public_key_in(path)
            if key is None:  # a half-written or foreign file: look again later
                seen = None
            elif key != self._public_nkey and self.is_connected:
                log.info("nkey seed %s holds a new key (%s...): reconnecting", path, key[:8])
                await self.force_reconnect()

    async def _close(self, status: int, do_cbs: bool = True) -> None:
        watch = self._seed_watch
        if status == Client.CLOSED and watch is not None and watch is not asyncio.current_task():
            self._seed_watch = None
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await super()._close(status, do_cbs)


async def connect_client(servers: str | list[str], **options: Any) -> WaybillNatsClient:
    """``nats.connect``, with :class:`WaybillNatsClient`: for commands and tools.

    A failed connection is closed (nats-py leaves the socket of a refused
    first attempt open when it may not reconnect).
    """
    client = WaybillNatsClient()
    try:
        await client.connect(servers, **options)
    except BaseException:
        with contextlib.suppress(Exception):
            await client.close()
        raise
    return client
