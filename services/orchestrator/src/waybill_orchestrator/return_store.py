"""Returns' states in the workflow bucket, kept exactly as orders' are.

:class:`ReturnStore` is the order's :class:`~waybill_orchestrator.workflow.WorkflowStore`
(compare-and-set on the revision read, outbox published after the write,
states remembered per instance, finished ones expiring) running the return
state machine: keys ``return.<id>``, open returns indexed under
``open-return.`` for the deadline sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from nats.js.kv import KeyValue

from waybill_orchestrator.changes import Decision, Happening, Policy
from waybill_orchestrator.open_orders import OpenOrders
from waybill_orchestrator.return_process import ReturnPolicy, return_transition
from waybill_orchestrator.return_state import (
    FINAL_RETURN_STAGES,
    ReturnState,
    decode_return,
    encode_return,
)
from waybill_orchestrator.workflow import WorkflowStore, utc_now
from waybill_runtime.bus.publisher import Publisher

RETURN_PREFIX = "return."
"""Keys of returns' states in the workflow bucket."""

OPEN_RETURN_PREFIX = "open-return."
"""Keys of the open-returns index."""


class ReturnStore(WorkflowStore):
    """The returns of one installation, and the sending of their messages."""

    key_prefix = RETURN_PREFIX

    def __init__(
        self,
        kv: KeyValue,
        publisher: Publisher,
        policy: ReturnPolicy,
        *,
        write_attempts: int = 25,
        clock: Callable[[], datetime] = utc_now,
        finished_ttl_s: float = 0.0,
    ) -> None:
        super().__init__(
            kv,
            publisher,
            Policy(),
            write_attempts=write_attempts,
            clock=clock,
            finished_ttl_s=finished_ttl_s,
        )
        self.return_policy = policy

    def _open_index(self, kv: KeyValue) -> OpenOrders:
        return OpenOrders(kv, state_prefix=RETURN_PREFIX, index_prefix=OPEN_RETURN_PREFIX)

    def _decide(self, state: ReturnState | None, happening: Happening) -> Decision:  # type: ignore[override]
        return return_transition(state, happening, self.return_policy)

    def _decode(self, value: bytes) -> ReturnState:  # type: ignore[override]
        return decode_return(value)

    def _encode(self, state: ReturnState) -> bytes:  # type: ignore[override]
        return encode_return(state)

    def finished(self, state: ReturnState) -> bool:  # type: ignore[override]
        return state.stage in FINAL_RETURN_STAGES
