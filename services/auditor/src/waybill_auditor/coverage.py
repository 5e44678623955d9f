"""Which messages some service consumes: the durable consumers on the bus, not the declarations.

A message no consumer but the auditor's reads is stored in its stream and
otherwise ignored: a command whose owner is not deployed is work nobody
does. The auditor flags such a message in the trail (``unconsumed``) and
counts it (``waybill_audit_unconsumed_total{type}``).

The truth is what runs: the durable consumers of the events and commands
streams and their subject filters (an auditor deployed alone knows no other
service's declaration). They are read again every :data:`REFRESH_S`, and at
most every :data:`RECHECK_S` when a subject no consumer takes comes along
(a service that has just started).

One read at a time: the messages that find the filters due while a read is
on its way wait for that read rather than make their own (a burst of
messages on a subject nobody takes, every one of them handled at once, made
a read each: 87 reads of the consumers in a 300-order burst,
docs/benchmarks.md).

Each message asks about its subject; the answer for a subject is kept until
the filters read change (a few dozen subjects, each matched against every
filter once, rather than every message matching them all: a sixteenth of the
auditor's CPU under a burst, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import time

from nats.js.client import JetStreamContext

from waybill_contracts import SubjectMap
from waybill_runtime.bus.dead_letters import subject_matches

log = logging.getLogger("waybill.auditor")

REFRESH_S = 60.0
RECHECK_S = 5.0
MAX_ANSWERS = 1024
"""Subjects whose answer is kept at most (a bound: subjects come from the wire)."""


class ConsumerCoverage:
    """Answers "does a durable consumer other than the auditor's take this subject?"."""

    def __init__(
        self,
        js: JetStreamContext,
        subjects: SubjectMap,
        *,
        own: frozenset[str],
        read_here: frozenset[str] = frozenset(),
    ) -> None:
        """``read_here``: subjects the auditor itself is the consumer of (the control tower
        shows them), never work nobody does."""
        self.js, self.subjects, self.own = js, subjects, own
        self.read_here = read_here
        self._filters: tuple[str, ...] = ()
        self._read_at = float("-inf")
        self._warned: set[str] = set()
        # subject -> covered, for the filters as last read.
        self._answers: dict[str, bool] = {}
        # The read on its way, which every message finding the filters due awaits.
        self._reading: asyncio.Task[None] | None = None

    async def _refresh(self) -> None:
        """Read the consumers, or await the read already on its way."""
        reading = self._reading
        if reading is None:
            reading = self._reading = asyncio.create_task(self._read(), name="consumer coverage")
            reading.add_done_callback(self._read_done)
        # Shielded: a handler given up on (its message's deadline) does not cancel the
        # read the others await.
        await asyncio.shield(reading)

    def _read_done(self, reading: asyncio.Task[None]) -> None:
        self._reading = None
        if not reading.cancelled():
            reading.exception()  # retrieved: its waiters logged it, or none was left

    async def _read(self) -> None:
        filters: list[str] = []
        for stream in (self.subjects.events_stream, self.subjects.commands_stream):
            for info in await self.js.consumers_info(stream.name):
                config = info.config
                if config.durable_name is None or config.durable_name in self.own:
                    continue
                wanted = config.filter_subjects or (
                    [config.filter_subject] if config.filter_subject else list(stream.subjects)
                )
                filters.extend(wanted)
        if tuple(filters) != self._filters:
            # The answers hold while the filters do: a subject nobody takes has them
            # read again every RECHECK_S, and clearing the answers each time matched
            # every subject again (2.5 % of the auditor's event loop in a burst).
            self._filters = tuple(filters)
            self._answers = {}
        self._read_at = time.monotonic()

    def _covers(self, subject: str) -> bool:
        answer = self._answers.get(subject)
        if answer is None:
            answer = any(subject_matches(subject, pattern) for pattern in self._filters)
            if len(self._answers) >= MAX_ANSWERS:
                self._answers.clear()
            self._answers[subject] = answer
        return answer

    async def consumed(self, subject: str) -> bool:
        """Whether some other durable consumer takes ``subject``; a failed look-up says yes."""
        if subject in self.read_here:
            return True
        age = time.monotonic() - self._read_at
        try:
            if age > REFRESH_S or (age > RECHECK_S and not self._covers(subject)):
                await self._refresh()
        except Exception as error:
            log.warning(
                "cannot list the consumers (%s: %s); not judging %s",
                type(error).__name__,
                error,
                subject,
            )
            return True
        covered = self._covers(subject)
        if not covered and subject not in self._warned:
            self._warned.add(subject)
            log.warning(
                "no service consumes %s: its messages are only stored (deploy its consumer, or "
                "stop publishing it)",
                subject,
            )
        return covered
