"""When orders move: one asyncio task per order walks the stages with delays and holds.

A *hold* keeps an order from entering a stage until it is released. Holds
are keyed by client order ref and may be placed before the order exists, so
a test can make the warehouse sit on an order past Waybill's deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from waybill_sandboxes.wms.records import STAGES, OrderStatus
from waybill_sandboxes.wms.warehouse import Warehouse

__all__ = ["DEFAULT_STAGE_DELAYS_S", "OrderLifecycle", "parse_stage"]

_log = logging.getLogger(__name__)

#: Small by default so tests and demos move quickly.
DEFAULT_STAGE_DELAYS_S: Mapping[OrderStatus, float] = {
    OrderStatus.ACCEPTED: 0.05,
    OrderStatus.PICKED: 0.1,
    OrderStatus.PACKED: 0.1,
    OrderStatus.SHIPPED: 0.1,
}


def parse_stage(name: str) -> OrderStatus:
    """The lifecycle stage called ``name``, or ValueError listing the valid ones."""
    for stage in STAGES:
        if stage.value == name:
            return stage
    valid = ", ".join(stage.value for stage in STAGES)
    raise ValueError(f"unknown stage {name!r}: use one of {valid}")


class _Hold:
    def __init__(self, stage: OrderStatus) -> None:
        self.stage = stage
        self.released = asyncio.Event()


class OrderLifecycle:
    """Drives orders of a :class:`Warehouse` through accepted → picked → packed → shipped."""

    def __init__(self, warehouse: Warehouse, delays_s: Mapping[str, float] | None = None) -> None:
        self.warehouse = warehouse
        self.delays_s: dict[OrderStatus, float] = dict(DEFAULT_STAGE_DELAYS_S)
        if delays_s:
            self.set_delays(delays_s)
        self._holds: dict[str, _Hold] = {}
        self._waiting: dict[str, OrderStatus] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def set_delays(self, delays_s: Mapping[str, float]) -> None:
        """Change the delay before each named stage (seconds, 0 allowed); all or nothing."""
        checked: dict[OrderStatus, float] = {}
        for name, delay in delays_s.items():
            if delay < 0:
                raise ValueError(f"the delay before {name} must be 0 or more, got {delay}")
            checked[parse_stage(str(name))] = delay
        self.delays_s.update(checked)

    def start(self, order_id: str) -> None:
        """Begin moving a freshly created order."""
        task = asyncio.create_task(self._run(order_id), name=f"wms-lifecycle-{order_id}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("order lifecycle crashed", exc_info=task.exception())

    def hold(self, client_order_ref: str, stage: OrderStatus | str) -> None:
        """Keep the order from entering ``stage`` until :meth:`release`."""
        checked = parse_stage(str(stage))
        self.release(client_order_ref)
        self._holds[client_order_ref] = _Hold(checked)

    def release(self, client_order_ref: str) -> bool:
        """Lift the hold on an order; False if it had none."""
        hold = self._holds.pop(client_order_ref, None)
        if hold is None:
            return False
        hold.released.set()
        return True

    def held(self) -> dict[str, str]:
        """Holds in force: client order ref → stage it may not enter."""
        return {ref: str(hold.stage) for ref, hold in self._holds.items()}

    def waiting(self) -> dict[str, str]:
        """Orders parked at a hold right now: client order ref → stage."""
        return {ref: str(stage) for ref, stage in self._waiting.items()}

    async def _run(self, order_id: str) -> None:
        ref = self.warehouse.order(order_id).client_order_ref
        for stage in STAGES:
            await asyncio.sleep(self.delays_s[stage])
            await self._pass_hold(ref, stage)
            if not self.warehouse.advance(order_id, stage):
                return

    async def _pass_hold(self, ref: str, stage: OrderStatus) -> None:
        while (hold := self._holds.get(ref)) is not None and hold.stage is stage:
            self._waiting[ref] = stage
            try:
                await hold.released.wait()
            finally:
                self._waiting.pop(ref, None)

    async def idle(self, timeout_s: float = 10.0) -> None:
        """Wait until no order is moving (held orders count as moving)."""
        async with asyncio.timeout(timeout_s):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Stop every order where it is."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
