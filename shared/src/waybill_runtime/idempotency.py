"""Effects on partners that happen once per business key, whatever is redelivered.

Before calling a partner (buying a label, sending an email, writing to Odoo)
the caller records its intent under a business key in a KV bucket; after the
call it records the result. A redelivery then finds:

- the result: the effect happened, the stored result is returned, nothing is called;
- only the intent: an earlier attempt may or may not have reached the
  partner. If the caller can look the effect up (``recover``, e.g. find the
  label bought with our reference), its answer decides; otherwise an intent
  younger than ``in_doubt_after_s`` means another worker may still be at it
  (retry later), and an older one is taken as failed and the effect is made.

The intent is written with compare-and-set, so two workers never both make
the effect for one key.

Results this process stored or read are also remembered in memory (the most
recent few thousand keys): a result never changes once recorded, and facts
are seen again often (every webhook of an order repeats its earlier stages),
so a repeat costs no round trip to the bucket.

A caller that keeps its own record of what became of an effect (the notifier's
step records, say) and expects a key to be new can ask :meth:`OnceOnly.run_new`:
the effect is made only if the key has never been written, and a key written
before is reported without being read, so the caller's usual path decides.

An effect that may be repeated harmlessly for a while (a publish the stream
drops as a duplicate of its ``Nats-Msg-Id`` within its window) needs no intent:
:meth:`OnceOnly.run_deduplicated` reads the key, makes the effect if no result
is recorded, and writes the result once, and callers in one process asking for
the same key at the same time share one attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Literal, TypeVar

import msgspec
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_runtime.outcomes import RetryLater
from waybill_runtime.recent import Recent

T = TypeVar("T")

log = logging.getLogger("waybill.idempotency")


class EffectRecord(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """What the bucket holds for one business key."""

    state: Literal["intent", "done"]
    at: float
    result: T | None = None


class EffectInProgress(RetryLater):
    """Another attempt recorded its intent moments ago; ask again later."""


class Begun(enum.Enum):
    """What :meth:`OnceOnly.run_new` answers for a key that was written before."""

    EARLIER = "earlier"


def kv_key(key: str) -> str:
    """A business key (``WH/OUT/00042``) as a KV key: readable, and one-to-one.

    KV keys allow only some characters, and dots separate subject tokens;
    everything but letters, digits, ``-`` and ``=`` is written ``_xx`` (hex),
    ``_`` itself included, so two business keys never share a KV key.
    """
    if key.isascii():
        # The common case, in C: a key or two per message in most services.
        return key.translate(_ASCII_KEY_CHARS)
    return "".join(_ASCII_KEY_CHARS.get(ord(c)) or _escape(c) for c in key)


def _escape(char: str) -> str:
    return "".join(f"_{byte:02x}" for byte in char.encode())


def _kept(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "-=")


# Every ASCII character as it is written in a KV key (itself, or ``_xx``).
_ASCII_KEY_CHARS: dict[int, str] = {
    code: chr(code) if _kept(chr(code)) else _escape(chr(code)) for code in range(128)
}


REMEMBERED_RESULTS = 4096
"""How many completed keys each :class:`OnceOnly` keeps in memory (oldest forgotten first)."""


class OnceOnly(Generic[T]):
    """Runs effects at most once per key, storing their results (type ``T``)."""

    def __init__(
        self,
        kv: KeyValue,
        result_type: type[T],
        *,
        in_doubt_after_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        remembered: int = REMEMBERED_RESULTS,
    ) -> None:
        self._kv = kv
        self._record_type: type[EffectRecord[T]] = EffectRecord[result_type]  # type: ignore[valid-type]
        self._decode = msgspec.json.Decoder(self._record_type).decode
        self._encode = msgspec.json.Encoder().encode
        self._in_doubt_after_s = in_doubt_after_s
        self._clock = clock
        self._done: Recent[str, _Known[T]] = Recent(remembered)
        # Keys whose deduplicated effect is under way in this process: a second
        # caller waits for it rather than going to the bucket (run_deduplicated).
        self._running: dict[str, asyncio.Future[T]] = {}

    def _remember(self, stored_key: str, result: T) -> T:
        self._done.put(stored_key, _Known(result))
        return result

    async def result_of(self, key: str) -> T | None:
        """The stored result of ``key``'s effect, if it completed."""
        stored_key = kv_key(key)
        known = self._done.get(stored_key)
        if known is not None:
            return known.value
        try:
            entry = await self._kv.get(stored_key)
        except KeyNotFoundError:
            return None
        record = self._decode(entry.value or b"")
        if record.state != "done":
            return None
        return self._remember(stored_key, record.result)  # type: ignore[arg-type]

    async def run(
        self,
        key: str,
        effect: Callable[[], Awaitable[T]],
        *,
        recover: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """Make ``effect`` happen once for ``key`` and return its result."""
        stored_key = kv_key(key)
        known = self._done.get(stored_key)
        if known is not None:
            return known.value
        intent = self._encode(self._record_type(state="intent", at=self._clock()))
        try:
            # Written only if the key has never been written (revision 0). Not
            # ``kv.create``: on a conflict it reads the key to tell a deleted one
            # apart, and :meth:`_resume` reads it anyway.
            revision = await self._kv.update(stored_key, intent, last=0)
        except KeyWrongLastSequenceError:
            resumed = await self._resume(stored_key, intent, recover)
            if isinstance(resumed, _Known):
                return resumed.value
            revision = resumed
        return await self._make(stored_key, revision, effect)

    async def run_new(self, key: str, effect: Callable[[], Awaitable[T]]) -> T | Begun:
        """Make ``effect`` happen only if ``key`` has never been written.

        Two round trips when the key is new (the intent and the result, as
        :meth:`run`); one, and no effect, when it was written before (or is
        remembered here): :attr:`Begun.EARLIER`, and the caller goes its usual
        way, which reads what became of it. For callers whose own records say
        whether a key can be new only after a read: this spares that read on
        the first delivery, which is nearly every delivery.
        """
        stored_key = kv_key(key)
        if stored_key in self._done:
            return Begun.EARLIER
        intent = self._encode(self._record_type(state="intent", at=self._clock()))
        try:
            revision = await self._kv.update(stored_key, intent, last=0)
        except KeyWrongLastSequenceError:
            return Begun.EARLIER
        return await self._make(stored_key, revision, effect)

    async def run_deduplicated(
        self, key: str, effect: Callable[[], Awaitable[T]], *, unread: bool = False
    ) -> T:
        """Make ``effect`` once for ``key``, for an effect the partner deduplicates for a while.

        For a publish with a ``Nats-Msg-Id`` derived from ``key``: made twice within
        the stream's duplicate window, it is stored once, so no intent guards it.
        One read and one write when the key is new (:meth:`run`: two writes), none
        when it is remembered, and callers here asking for a key that is under way
        wait for that attempt. The result is written after the effect, so a crash
        in between leaves no record and the next attempt makes the effect again:
        harmless within the window, and beyond it (a crash, then nothing for
        minutes) the same as :meth:`run`'s ``recover`` re-publishing over an intent.
        A record left as an intent by :meth:`run` is treated the same way.

        ``unread``: the caller knows any earlier making of ``key`` is still inside the
        partner's window, so the record is not read first: the effect is made (the partner
        drops a repeat) and its record written as new; a record already there fails that
        write, which means another attempt made and recorded it. One write, no read.
        """
        stored_key = kv_key(key)
        known = self._done.get(stored_key)
        if known is not None:
            return known.value
        running = self._running.get(stored_key)
        if running is not None:
            # shield: a caller that gives up must not cancel the attempt others wait for.
            return await asyncio.shield(running)
        attempt: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[stored_key] = attempt
        try:
            result = await self._read_or_make(stored_key, effect, unread)
        except BaseException as error:
            attempt.set_exception(error)
            attempt.exception()  # retrieved: no waiter is not an unhandled error
            raise
        else:
            attempt.set_result(result)
            return result
        finally:
            del self._running[stored_key]

    async def _read_or_make(
        self, stored_key: str, effect: Callable[[], Awaitable[T]], unread: bool
    ) -> T:
        last = 0
        if not unread:
            try:
                entry = await self._kv.get(stored_key)
            except KeyNotFoundError as missing:
                marker = getattr(missing, "entry", None)  # deleted or purged: write over it
                last = (marker.revision or 0) if marker else 0
            else:
                record = self._decode(entry.value or b"")
                if record.state == "done":
                    return self._remember(stored_key, record.result)  # type: ignore[arg-type]
                last = entry.revision or 0
        result = await effect()
        done = self._encode(self._record_type(state="done", at=self._clock(), result=result))
        try:
            await self._kv.update(stored_key, done, last=last)
        except KeyWrongLastSequenceError:
            # Another process made and recorded it meanwhile (the stream kept one copy);
            # expected, not news, when the record was not read first.
            log.log(
                logging.DEBUG if unread else logging.INFO,
                "effect %s was recorded by another attempt meanwhile",
                stored_key,
            )
        # Remembered only once recorded: if the write failed, the caller's retry here
        # makes the (deduplicated) effect again and writes the record then.
        return self._remember(stored_key, result)

    async def _make(self, stored_key: str, revision: int, effect: Callable[[], Awaitable[T]]) -> T:
        """The effect, with this attempt's intent at ``revision``, and its result recorded."""
        try:
            result = await effect()
        except BaseException:
            # This attempt is over: mark the intent as in doubt right away so the
            # next delivery consults ``recover`` (or retries) without waiting.
            released = self._encode(self._record_type(state="intent", at=0.0))
            with contextlib.suppress(Exception):
                await self._kv.update(stored_key, released, last=revision)
            raise
        # The effect is made: this process knows it from now on, whatever the bucket says,
        # so a redelivery here never makes it again.
        self._remember(stored_key, result)
        await self._record_done(stored_key, result, revision)
        return result

    async def _record_done(self, stored_key: str, result: T, revision: int) -> None:
        """Write the result over this attempt's intent.

        While the bucket is out of reach (NATS restarting, a cluster electing a leader)
        the write is tried again, for as long as other workers leave the intent alone:
        left as an intent, it would be taken over after ``in_doubt_after_s`` and an
        effect without ``recover`` (an email) made a second time.
        """
        done = self._encode(self._record_type(state="done", at=self._clock(), result=result))
        give_up_at, pause = time.monotonic() + self._in_doubt_after_s, 0.1
        while True:
            try:
                await self._kv.update(stored_key, done, last=revision)
                return
            except KeyWrongLastSequenceError:
                # Another attempt wrote the key meanwhile: its ``recover`` found the
                # effect (and recorded it), or it took over an intent that looked
                # abandoned; or an earlier try of this write landed but its answer was
                # lost. The effect is made either way; failing here would only make the
                # caller do it again.
                log.info("effect %s was recorded by another attempt meanwhile", stored_key)
                return
            except (NatsError, OSError):
                if time.monotonic() + pause > give_up_at:
                    raise
                log.warning("effect %s made; recording it waits for NATS", stored_key)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _resume(
        self,
        stored_key: str,
        intent: bytes,
        recover: Callable[[], Awaitable[T | None]] | None,
    ) -> int | _Known[T]:
        try:
            entry = await self._kv.get(stored_key)
        except KeyNotFoundError as missing:
            # Deleted or purged (nats-py reports the marker as not found): as good
            # as never written. The marker's revision is the one to write over.
            marker = getattr(missing, "entry", None)
            written: int = await self._kv.update(
                stored_key, intent, last=(marker.revision or 0) if marker else 0
            )
            return written
        record = self._decode(entry.value or b"")
        assert entry.revision is not None
        if record.state == "done":
            return _Known(self._remember(stored_key, record.result))  # type: ignore[arg-type]
        if recover is not None:
            found = await recover()
            if found is not None:
                done = self._encode(self._record_type(state="done", at=self._clock(), result=found))
                # A conflict: the attempt that wrote the intent finished meanwhile.
                with contextlib.suppress(KeyWrongLastSequenceError):
                    await self._kv.update(stored_key, done, last=entry.revision)
                return _Known(self._remember(stored_key, found))
        # Not found (or no way to look): a young intent may belong to a call
        # still under way elsewhere, whose effect is not visible yet.
        if self._clock() - record.at < self._in_doubt_after_s:
            raise EffectInProgress(f"effect {stored_key} is in progress elsewhere")
        # Take over the intent; compare-and-set makes sure only one taker wins.
        try:
            revision = await self._kv.update(stored_key, intent, last=entry.revision)
        except KeyWrongLastSequenceError:
            raise EffectInProgress(
                f"effect {stored_key} was taken over by another attempt"
            ) from None
        return revision


class _Known(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value
