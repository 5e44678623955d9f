"""Orders' states in the workflow bucket: read, decide, compare-and-set, then send.

Two instances (or two handlers of one instance) may work on the same order
at once. Each writes only on top of the revision it read; the loser of a race
reads again and decides again, so no decision is ever made on stale state.
Messages are sent only after their state is stored, and stay in the state's
outbox until they are, so neither a retry nor a crash sends a command twice
or loses one.

Publishing an outbox does not clear it with a write of its own: the ids this
instance published are remembered, and the order's next write (decided on the
remembered state, which has them taken out) leaves them out. An order that
waits longer than :data:`OUTBOX_GRACE_S` after a transition has its outbox
published again (the same ids: JetStream drops them within its duplicate
window) and cleared by the deadline sweep; so does a crash between a write and
its publish. A finished order's outbox is cleared at once, since no later
write will come.

The state this instance last wrote for an order is remembered (the most recent
:data:`REMEMBERED_STATES` orders), and the next event for the order is decided
on it without reading the bucket: the compare-and-set on its revision fails if
anyone wrote since, and the event is then decided again on what is stored. A
decision that would change nothing, or that says "not yet", is taken on what is
stored, since a stale state cannot be caught by a write that is not made; but
for one that would change nothing on any later state either (``lasting``: a
milestone already known), which a stale state decides as well as the stored one.

Events for one order are applied one at a time within an instance (a burst of
scans, or the warehouse's facts, arrive together): each is decided on the
state the one before wrote, where two at once decided on the same state and
the loser of the compare-and-set read the order and decided again.

An order this instance remembers nothing of is first taken as new: when the
event would create it (a release, a cancellation overtaking it), the state is
written with a create, which fails if the order exists after all, and the
event is then decided on what is stored. A new order's first event reads
nothing (it read a key that was not there before).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from waybill_contracts import Message
from waybill_orchestrator import outbox
from waybill_orchestrator.changes import Decision, Happening, NotYet, Observed, Policy, Requested
from waybill_orchestrator.open_orders import STATE_PREFIX, OpenOrders
from waybill_orchestrator.process import transition
from waybill_orchestrator.stages import FINAL
from waybill_orchestrator.state import OrderState, decode_state, encode_state
from waybill_runtime.bus.expiring import write_expiring
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.idempotency import kv_key
from waybill_runtime.outcomes import PermanentError, TransientError
from waybill_runtime.recent import Recent
from waybill_runtime.resilience import KeyedLock

log = logging.getLogger("waybill.orchestrator")

KEY_PREFIX = STATE_PREFIX
"""Keys of order-to-ship states (other processes may share the bucket later)."""

REMEMBERED_STATES = 1024
"""Orders whose last written state (and revision) each instance keeps in memory."""

OUTBOX_GRACE_S = 30.0
"""How long after its transition an outbox is left for the order's next write to clear;
the deadline sweep publishes and clears one older than this. Well inside JetStream's
duplicate window (two minutes), so what is published again is dropped as a repeat."""


class UnreadableState(PermanentError):
    """A stored state cannot be read (corrupt, or another order's): a person must look."""


class StateKeptChanging(TransientError):
    """Every compare-and-set attempt lost a race: try the message again later."""


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def key_for(order_ref: str) -> str:
    """The bucket key of an order (refs such as ``WH/OUT/00042`` are escaped)."""
    return KEY_PREFIX + kv_key(order_ref)


class WorkflowStore:
    """The order-to-ship states of one installation, and the sending of their messages.

    The process it runs is given by a few hooks (the key prefix, the state's codec,
    the transition, what is final), which :class:`~waybill_orchestrator.return_store.ReturnStore`
    overrides to run returns on the same compare-and-set, outbox and open index.
    """

    key_prefix = KEY_PREFIX

    def __init__(
        self,
        kv: KeyValue,
        publisher: Publisher,
        policy: Policy,
        *,
        write_attempts: int = 25,
        clock: Callable[[], datetime] = utc_now,
        remembered: int = REMEMBERED_STATES,
        finished_ttl_s: float = 0.0,
        outbox_grace_s: float = OUTBOX_GRACE_S,
    ) -> None:
        self._kv = kv
        self._written: Recent[str, tuple[OrderState, int]] = Recent(remembered)
        # Outbox entries this instance published, by order key: not published again.
        self._published: Recent[str, frozenset[str]] = Recent(remembered)
        # One event at a time per order here; other instances are kept apart by the
        # compare-and-set alone.
        self._applying = KeyedLock()
        self.outbox_grace_s = outbox_grace_s
        self._publisher = publisher
        self._policy = policy
        self._write_attempts = write_attempts
        self._finished_ttl_s = finished_ttl_s
        self.clock = clock
        self.open_orders = self._open_index(kv)

    # --- the process this store runs (overridden for returns) ---------------------------

    def _open_index(self, kv: KeyValue) -> OpenOrders:
        return OpenOrders(kv)

    def _decide(self, state: OrderState | None, happening: Happening) -> Decision:
        return transition(state, happening, self._policy)

    def _decode(self, value: bytes) -> OrderState:
        return decode_state(value)

    def _encode(self, state: OrderState) -> bytes:
        return encode_state(state)

    def finished(self, state: OrderState) -> bool:
        """True once the order (or return) is in a stage it never leaves."""
        return state.stage in FINAL

    def key_for(self, ref: str) -> str:
        """The bucket key of the order (or other process) ``ref``."""
        return self.key_prefix + kv_key(ref)

    # --- reading, deciding, writing, sending ---------------------------------------------

    async def read(self, order_ref: str) -> tuple[OrderState | None, int | None]:
        """The order's state and its revision; ``(None, None)`` for an order never seen."""
        state, revision = await self._read_key(self.key_for(order_ref))
        if state is not None and state.workflow_ref != order_ref:
            raise UnreadableState(
                f"key {self.key_for(order_ref)} holds order {state.workflow_ref}, not {order_ref}"
            )
        return state, revision

    async def _read_key(self, key: str) -> tuple[OrderState | None, int | None]:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None, None
        if entry.value is None:  # pragma: no cover - get() raises for deleted keys
            return None, None
        try:
            return self._decode(entry.value), entry.revision
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise UnreadableState(f"workflow state {key} is unreadable: {error}") from None

    async def open_keys(self) -> list[str]:
        """The keys of the orders not yet in a final stage (and perhaps a few just finished)."""
        return await self.open_orders.state_keys()

    async def keys(self) -> list[str]:
        """Every order key in the bucket, finished orders too."""
        try:
            # nats-py's own key filter matches substrings; the prefix is checked here.
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        return [key for key in keys if key.startswith(self.key_prefix)]

    async def read_key(self, key: str) -> tuple[OrderState | None, int | None]:
        """The state stored under ``key`` (as listed by :meth:`keys`)."""
        return await self._read_key(key)

    async def apply(self, order_ref: str, happening: Happening) -> Decision:
        """Apply ``happening`` to the order, store the result, then send its messages.

        Raises :class:`~waybill_orchestrator.changes.NotYet` when the order (or
        the shipment) is not known yet, and :class:`StateKeptChanging` when
        other writers won every race.
        """
        key = self.key_for(order_ref)
        async with self._applying.hold(key):
            return await self._apply(order_ref, key, happening)

    async def _apply(self, order_ref: str, key: str, happening: Happening) -> Decision:
        cause = happening.context if isinstance(happening, Observed | Requested) else None
        for attempt in range(self._write_attempts):
            decided = self._decide_on_remembered(key, happening) if attempt == 0 else None
            if decided is None:
                state, revision = await self.read(order_ref)
                decision = self._decide(state, happening)
            else:
                state, revision, decision = decided
            typed: dict[str, Message] = {}
            if decision.changed and decision.state is not None:
                added = outbox.pending(decision.state, decision.messages, cause)
                stored = outbox.with_entries(decision.state, added)
                try:
                    revision = await self._write(key, stored, revision)
                except KeyWrongLastSequenceError:
                    # Someone else changed the order since we read it: decide again.
                    self._written.forget(key)
                    if attempt:
                        await asyncio.sleep(random.uniform(0, 0.005 * attempt))
                    continue
                state = stored
                typed = outbox.decided_messages(added, decision.messages)
            if state is not None and state.outbox and revision is not None:
                await self.send_pending(
                    key, state, revision, clear=self.finished(state), decided=typed
                )
            return decision
        raise StateKeptChanging(
            f"order {order_ref} changed under every one of {self._write_attempts} attempts"
        )

    def _decide_on_remembered(
        self, key: str, happening: Happening
    ) -> tuple[OrderState | None, int | None, Decision] | None:
        """A decision on the state this instance last wrote (none: a new order), when a
        write will check it."""
        remembered = self._written.get(key)
        state, revision = remembered if remembered is not None else (None, None)
        try:
            decision = self._decide(state, happening)
        except NotYet:
            return None
        # Only the compare-and-set of a write catches a stale state (a create, one
        # that exists): a decision to change nothing is taken on the stored state
        # instead, unless it would be the same on every later state.
        if decision.changed or (decision.lasting and state is not None):
            return state, revision, decision
        return None

    async def _write(self, key: str, state: OrderState, revision: int | None) -> int:
        if revision is None:
            # Indexed before its first state exists, so no crash leaves an open order unindexed.
            await self.open_orders.add(key)
        written = await self._store(key, state, revision)
        if self.finished(state):
            await self.open_orders.remove(key)
        return written

    async def _store(self, key: str, state: OrderState, revision: int | None) -> int:
        """Compare-and-set ``state`` on ``revision`` (None: a new order); the new revision."""
        value = self._encode(state)
        if self.finished(state) and self._finished_ttl_s:
            # A finished order expires on its own: the bucket holds what is open.
            written = await write_expiring(
                self._kv, key, value, last=revision, ttl_s=self._finished_ttl_s
            )
        elif revision is None:
            written = await self._kv.create(key, value)
        else:
            written = await self._kv.update(key, value, last=revision)
        self._written.put(key, (state, written))
        return written

    def written_lately(self, key: str) -> OrderState | None:
        """The state this instance wrote under ``key`` less than the outbox grace ago, if any.

        What the deadline sweep need not read: its outbox cannot be overdue yet, and
        a state another instance wrote since is that instance's to sweep (should it
        stop, this one reads the order once the grace is over).
        """
        remembered = self._written.get(key)
        if remembered is None:
            return None
        state = remembered[0]
        if (self.clock() - state.updated_at).total_seconds() >= self.outbox_grace_s:
            return None
        return state

    def outbox_overdue(self, state: OrderState) -> bool:
        """True when ``state``'s outbox has waited longer than the grace for a write to clear it."""
        return bool(state.outbox) and (
            (self.clock() - state.updated_at).total_seconds() >= self.outbox_grace_s
        )

    async def send_pending(
        self,
        key: str,
        state: OrderState,
        revision: int,
        *,
        clear: bool = True,
        decided: Mapping[str, Message] | None = None,
    ) -> None:
        """Publish the state's outbox, then (``clear``) take what was sent out of it.

        Entries this instance published already are not published again. Without
        ``clear`` the stored state keeps them until the order's next write, which
        is decided on the state remembered here, where they are taken out.
        ``decided``: the typed messages of the entries this instance has just decided
        (by entry id), published as they are; any other entry's body is decoded.
        """
        published = self._published.get(key) or frozenset()
        sent: set[str] = set()
        for entry in state.outbox:
            if entry.message_id not in published:
                message = decided.get(entry.message_id) if decided else None
                await self._publisher.publish(
                    message if message is not None else outbox.message_of(entry),
                    cause=entry.cause,
                    fact_id=entry.message_id,
                    correlation_id=entry.correlation_id,
                    lane=state.lane,
                )
            sent.add(entry.message_id)
        self._published.put(key, frozenset(sent))
        if not clear:
            self._written.put(key, (outbox.without(state, sent), revision))
            return
        for _ in range(self._write_attempts):
            try:
                await self._store(key, outbox.without(state, sent), revision)
                return
            except KeyWrongLastSequenceError:
                self._written.forget(key)
                current, current_revision = await self._read_key(key)
                if current is None or current_revision is None:
                    return
                state, revision = current, current_revision
                if not any(entry.message_id in sent for entry in state.outbox):
                    return
        # Harmless: whoever reads the order next publishes these again under the same ids.
        log.warning("order key %s: could not clear its outbox; it will be sent again", key)
