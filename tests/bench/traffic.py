"""Every message through nats-server during a burst, counted by what it is for.

A process's cost per order follows how many round trips an order costs it, so
counting them says where to cut before any profile does. An admin connection
subscribed to ``>`` sees every publish, KV write and read, pull request and ack
(and the replies to them); each is filed under a label naming its purpose and,
where the subject says it, the consumer or the bucket and the key's first token:

- ``ack <consumer>``, ``pull <consumer>``: settling and asking for messages;
- ``kv write <bucket> <key prefix>``, ``kv read <bucket> <key prefix>``;
- ``publish <subject>`` for the events and commands streams' subjects;
- ``deliver <subject>`` and ``kv deliver <bucket> <key prefix>``: a stored
  message handed to a consumer (a pulled event, a key of a listing or a
  watch). The server hands it over under the subject it was stored with, so
  only its reply, a ``$JS.ACK.`` subject, tells it from a publish;
- ``reply``: answers to requests (publish acks, KV reads' answers, pulled messages);
- ``js api <operation>``: the rest of JetStream's API.

Watching costs nats-server one more delivery per message, so a burst counted
this way is not one to take CPU figures from. The watcher has a connection of
its own: behind a burst's flood, the harness's own requests would time out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["Traffic", "label_of"]

_DELIVERY_REPLY = "$JS.ACK."
"""The reply of a message a JetStream consumer hands over (the subject to ack it on)."""


def _key_prefix(tokens: list[str]) -> str:
    """What names a KV key's owner, without the ids that would make a label per order.

    The first token up to an escaped ``:`` or ``.`` (``label_3ashp-5`` is
    ``label:shp-5``, see :func:`waybill_runtime.idempotency.kv_key`), and the
    second when it is a word (``notifier.step.<id>``, ``tracking.carrier-b.<n>``).
    """
    first = re.split("_3a|_2e", tokens[0])[0]
    if len(tokens) > 1 and tokens[1].replace("-", "").isalpha():
        return f"{first}.{tokens[1]}"
    return first


def label_of(subject: str, reply: str = "") -> str:
    """What a message on ``subject`` with ``reply`` is for (see the module's docstring)."""
    tokens = subject.split(".")
    if tokens[0].startswith("_INBOX") or tokens[0] == "_R_":
        return "reply"
    delivered = reply.startswith(_DELIVERY_REPLY)
    if tokens[0] == "$KV" and len(tokens) > 2:
        verb = "deliver" if delivered else "write"
        return f"kv {verb} {tokens[1]} {_key_prefix(tokens[2:])}"
    if delivered:
        return "deliver " + subject
    if tokens[:2] == ["$JS", "ACK"] and len(tokens) > 3:
        return f"ack {tokens[3]}"
    if tokens[:2] == ["$JS", "API"]:
        if tokens[2:4] == ["DIRECT", "GET"] and len(tokens) > 4:
            bucket = tokens[4].removeprefix("KV_")
            # $JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key>
            return f"kv read {bucket} {_key_prefix(tokens[7:])}"
        if tokens[2:5] == ["STREAM", "MSG", "GET"] and len(tokens) > 5:
            # The key is in the request's body here, not in its subject.
            return f"kv read {tokens[5].removeprefix('KV_')}"
        if tokens[2:5] == ["CONSUMER", "MSG", "NEXT"] and len(tokens) > 6:
            return f"pull {tokens[6]}"
        return "js api " + ".".join(t for t in tokens[2:4])
    return "publish " + subject


class Traffic:
    """Counts messages by label while subscribed; :meth:`per_order` reports them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.complete = True
        """False when the watcher was cut off (a slow consumer) and missed messages."""
        self._subscription: Subscription | None = None
        self._nc: NatsClient | None = None
        self._reconnects = 0

    async def start(self, nc: NatsClient) -> None:
        """Count what ``nc`` (a connection for this alone, allowed to subscribe to ``>``) sees."""

        async def count(msg: Msg) -> None:
            self.counts[label_of(msg.subject, msg.reply)] += 1

        self._nc, self._reconnects = nc, nc.stats["reconnects"]

        # No limit: a burst's messages arrive faster than a few are counted.
        self._subscription = await nc.subscribe(
            ">", cb=count, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        await nc.flush()

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
        if self._nc is not None and self._nc.stats["reconnects"] != self._reconnects:
            self.complete = False

    def per_order(self, orders: int, *, at_least: float = 0.5) -> list[tuple[str, float]]:
        """Labels costing ``at_least`` messages per order, most first."""
        return sorted(
            (
                (label, count / orders)
                for label, count in self.counts.items()
                if count / orders >= at_least
            ),
            key=lambda item: (-item[1], item[0]),
        )


def traffic_table(rows: Iterable[tuple[str, float]]) -> str:
    """One line per label: messages per order, then the label."""
    return "\n".join(f"{per_order:8.1f}  {label}" for label, per_order in rows)
