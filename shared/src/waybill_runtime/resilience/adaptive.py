"""Calls in flight to a partner that can be overwhelmed, bounded by what it shows it can take.

A fixed cap is either too low on a quiet day or too high on the worst one:
under a burst, every extra call in flight to Odoo is one more transaction
competing for the same rows, and Odoo answers with lock conflicts and slow
calls. :class:`AdaptiveLimit` keeps the cap where the partner copes (additive
increase, multiplicative decrease, as TCP congestion control does):

* a call that completes faster than ``slow_s`` grows the cap by ``1/cap``
  (about one more call in flight per round of calls), up to ``maximum``;
* a call the partner was overwhelmed by (a lock conflict, "too many
  requests", a timeout, or slower than ``slow_s``) halves it, down to
  ``minimum``, once per round: calls already under way when the cap was cut
  do not cut it again.

Waiting callers queue in arrival order. The cap is exported so an operator
sees how hard the partner is being pushed.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

__all__ = ["AdaptiveLimit", "CallSlot"]


@dataclass
class CallSlot:
    """One call's place within the limit; tell it how the call went."""

    started_at: float
    epoch: int
    overloaded: bool = False

    def partner_overloaded(self) -> None:
        """The partner showed it is overwhelmed (lock conflict, 429/503, timeout)."""
        self.overloaded = True


class AdaptiveLimit:
    """At most ``cap`` calls at once, the cap moving between ``minimum`` and ``maximum``."""

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        initial: int | None = None,
        slow_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {minimum} and {maximum}")
        if slow_s <= 0:
            raise ValueError(f"slow_s must be above 0, got {slow_s}")
        self.minimum = minimum
        self.maximum = maximum
        self._cap = float(min(max(initial if initial is not None else maximum, minimum), maximum))
        self._slow_s = slow_s
        self._clock = clock
        self._in_flight = 0
        self._epoch = 0  # counts decreases: a call started before one does not cut again
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def cap(self) -> int:
        """Calls allowed in flight right now."""
        return int(self._cap)

    @property
    def in_flight(self) -> int:
        """Calls inside the limit right now."""
        return self._in_flight

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[CallSlot]:
        """Wait for room, then hold it for one call; an exception leaving it counts as fine
        unless the caller marked the slot overloaded (or the call was slow)."""
        await self._acquire()
        slot = CallSlot(started_at=self._clock(), epoch=self._epoch)
        try:
            yield slot
        finally:
            self._in_flight -= 1
            self._settle(slot)
            self._wake()

    async def _acquire(self) -> None:
        if self._in_flight < self.cap and not self._waiters:
            self._in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Given room just as it was cancelled: pass the room on.
                self._in_flight -= 1
                self._wake()
            else:
                self._waiters.remove(waiter)
            raise

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self.cap:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def _settle(self, slot: CallSlot) -> None:
        slow = self._clock() - slot.started_at > self._slow_s
        if slot.overloaded or slow:
            if slot.epoch == self._epoch:  # the first bad news of this round cuts the cap
                self._cap = max(float(self.minimum), self._cap / 2)
                self._epoch += 1
            return
        self._cap = min(float(self.maximum), self._cap + 1 / self._cap)
