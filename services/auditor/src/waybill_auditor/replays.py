"""Replaying a dead letter for an operator at the control tower: the same replay as
`waybill dlq replay`, with the same refusals, done by the auditor in the operator's name.

It is no command of its own: the replay *is* a message on the bus, the
original put back on its subject naming the operator (``Waybill-Replayed-By``),
which the trail records in the order's timeline. A letter that may not be
replayed (not a Waybill event or command of its own type) stays, and the
operator is told why.
"""

from __future__ import annotations

import enum
import logging

from nats.js.client import JetStreamContext

from waybill_contracts import SubjectMap
from waybill_runtime.bus.dead_letters import iter_dead_letters
from waybill_runtime.bus.replay import ReplayRefused, replay

log = logging.getLogger("waybill.auditor")


class Replayed(enum.Enum):
    """What became of a replay request."""

    DONE = "done"
    GONE = "gone"
    """No such letter in the stream (replayed already, or never there)."""


async def replay_for_operator(
    js: JetStreamContext, subjects: SubjectMap, sequence: int, *, operator: str
) -> Replayed:
    """Replay dead letter ``sequence`` in ``operator``'s name.

    :class:`ReplayRefused` when the letter may not be replayed (it stays);
    NATS errors as they come.
    """
    found = [s async for s in iter_dead_letters(js, subjects, sequence=sequence)]
    if not found:
        return Replayed.GONE
    try:
        await replay(js, subjects, found[0], operator=operator)
    except ReplayRefused as refused:
        log.warning("dead letter %d not replayed for %s: %s", sequence, operator, refused)
        raise
    log.info("dead letter %d replayed for %s", sequence, operator)
    return Replayed.DONE
