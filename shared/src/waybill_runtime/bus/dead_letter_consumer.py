"""Consuming the dead-letter stream (the auditor's view of what failed).

A handler that fails on a dead letter is retried with backoff; when its
retries run out the runtime gives up on it for this consumer only: the dead
letter itself stays in the dead-letter stream, and writing a dead letter
about a dead letter could loop forever.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg

from waybill_runtime.bus.consumer import Consumer
from waybill_runtime.bus.dead_letter_format import NotADeadLetter, read_dead_letter
from waybill_runtime.bus.dead_letters import StoredDeadLetter
from waybill_runtime.bus.pull import Delivery
from waybill_runtime.outcomes import backoff_delay

log = logging.getLogger("waybill.bus")

DeadLetterHandler = Callable[[StoredDeadLetter], Awaitable[None]]


@dataclass
class DeadLetterConsumer(Consumer):
    """A consumer of the dead-letter stream that hands each letter to one handler."""

    letter_handler: DeadLetterHandler | None = None

    async def _handle(self, msg: Msg, delivery: Delivery) -> None:
        assert self.letter_handler is not None
        attempt, sequence = delivery.attempt, delivery.stream_sequence
        try:
            letter = read_dead_letter(msg.headers, msg.data)
        except NotADeadLetter as error:
            log.error(
                "message %d on %s is not a dead letter: %s",
                sequence,
                msg.subject,
                error,
            )
            await msg.term()
            return
        try:
            await self.letter_handler(StoredDeadLetter(sequence=sequence, letter=letter))
        except Exception as error:
            if attempt < self.options.max_deliver:
                delay = backoff_delay(attempt, self.options.retry_backoff_s)
                log.warning(
                    "handling dead letter %d failed (%s: %s); retrying in %.1f s",
                    sequence,
                    type(error).__name__,
                    error,
                    delay,
                )
                await msg.nak(delay=delay)
            else:
                log.error(
                    "giving up on dead letter %d after %d attempts (%s: %s); it stays in the "
                    "dead-letter stream",
                    sequence,
                    attempt,
                    type(error).__name__,
                    error,
                )
                await msg.term()
        else:
            await msg.ack()
