"""NATS permissions generated from the service declarations: least privilege per identity.

A service may publish only what its declaration says it publishes and sends,
its own dead letters, and the JetStream API calls its own durables and
buckets need; it may subscribe only to its own inbox prefix (so no one reads
another's replies) and to its query subjects. Provisioning (streams, buckets,
durables) is not among a service's rights: the admin identity does it
(`waybill provision`). The operator identity reads and replays dead letters
and asks queries (`waybill dlq`, the demo).

Every subject comes from the declaration and the subject map; nothing here
names a service.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from waybill_contracts import SubjectMap
from waybill_runtime.bus.pull import next_subject
from waybill_runtime.declaration import Declaration

__all__ = [
    "ADMIN",
    "OPERATOR",
    "Identity",
    "Permissions",
    "admin_identity",
    "inbox_prefix",
    "operator_identity",
    "service_identity",
]

ADMIN = "admin"
OPERATOR = "operator"

# Stream names JetStream gives KV buckets.
_KV_STREAM = "KV_{bucket}"


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    """What one NATS user may publish and subscribe to (nats-server's ``permissions``)."""

    publish: list[str]
    subscribe: list[str]
    # Replies to requests it received (queries, $SRV), each once: nats-server
    # grants publishing to the reply subject for that one answer.
    allow_responses: bool = True


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """A NATS user of the mesh: its name, role, inbox prefix and permissions."""

    name: str
    role: str  # service, admin or operator
    inbox_prefix: str
    permissions: Permissions


def inbox_prefix(name: str) -> str:
    """The reply-inbox prefix of identity ``name`` (one subject token, e.g. ``_INBOX_notifier``)."""
    return f"_INBOX_{name}"


def _sorted(subjects: Iterable[str]) -> list[str]:
    return sorted(set(subjects))


def _durable_rights(stream: str, durable: str) -> list[str]:
    # Fetch (pull requests), look the durable up, ack/nak/term its deliveries.
    return [
        next_subject(stream, durable),
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _bucket_rights(bucket: str) -> list[str]:
    stream = _KV_STREAM.format(bucket=bucket)
    return [
        f"$KV.{bucket}.>",  # put, create, update, delete
        f"$JS.API.STREAM.INFO.{stream}",  # bind (js.key_value)
        # get: Waybill's buckets are made without direct get (provisioning),
        # so reads go through the stream's message API.
        f"$JS.API.STREAM.MSG.GET.{stream}",
        # keys() and watch(): an ordered consumer of the bucket's own stream,
        # and the flow-control replies it sends.
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.*",  # keys() asks how many are pending
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _query_rights(service_name: str, subjects: SubjectMap, queries: Iterable[str]) -> list[str]:
    # Every service answers $SRV PING/INFO/STATS, for all services and by its name.
    name = subjects.query_service_name(service_name)
    return [
        "$SRV.*",
        f"$SRV.*.{name}",
        f"$SRV.*.{name}.*",
        *(subjects.query_subject(service_name, query) for query in queries),
    ]


def service_identity(
    declaration: Declaration, subjects: SubjectMap, *, tracing: bool = False
) -> Identity:
    """The least-privilege identity of the service ``declaration`` describes.

    ``tracing`` adds the shared ``traces`` bucket (services write each order's
    trace context there when OpenTelemetry is on).
    """
    # Each event and command on both lanes: a message goes out on its cause's lane.
    publish = [
        subject
        for m in (*declaration.publishes, *declaration.sends)
        for subject in subjects.lane_subjects(m.subject)
    ]
    publish.append(subjects.dlq_subject(declaration.name))
    durables = {(c.stream, c.durable) for c in declaration.consumes}
    if declaration.consumes_dead_letters:
        durables.add((subjects.dlq_stream.name, subjects.durable(declaration.name, "dead-letters")))
    for stream, durable in sorted(durables):
        publish += _durable_rights(stream, durable)
    buckets = [b.bucket for b in declaration.buckets]
    if tracing:
        buckets.append(subjects.kv_bucket("traces"))
    for bucket in buckets:
        publish += _bucket_rights(bucket)
    prefix = inbox_prefix(declaration.name)
    subscribe = [f"{prefix}.>", *_query_rights(declaration.name, subjects, declaration.queries)]
    if declaration.watches_mesh:
        publish += _watcher_rights(subjects)
        subscribe += subjects.advisory_subjects()
    if declaration.replays_dead_letters:
        publish += _replay_rights(subjects)
    return Identity(
        name=declaration.name,
        role="service",
        inbox_prefix=prefix,
        permissions=Permissions(publish=_sorted(publish), subscribe=_sorted(subscribe)),
    )


def _watcher_rights(subjects: SubjectMap) -> list[str]:
    # The mesh's watcher reads an unsettled message by its sequence, writes the
    # dead letter of the service that gave up on it, and lists every durable to
    # judge which messages nobody consumes.
    rights = list(subjects.dlq_stream.subjects)
    for stream in (subjects.events_stream.name, subjects.commands_stream.name):
        rights += [f"$JS.API.STREAM.MSG.GET.{stream}", f"$JS.API.CONSUMER.LIST.{stream}"]
    return rights


def admin_identity() -> Identity:
    """Provisioning and tests: every right (streams, buckets, durables, any subject)."""
    return Identity(
        name=ADMIN,
        role=ADMIN,
        inbox_prefix=inbox_prefix(ADMIN),
        permissions=Permissions(publish=[">"], subscribe=[">"]),
    )


def _replay_rights(subjects: SubjectMap) -> list[str]:
    # Replay reads a letter by its sequence, and the original of a letter cut to
    # fit (its pointer names the stream and sequence), publishes it again on its
    # original subject (an event or a command; `replay` refuses anything else),
    # then removes the letter.
    dlq = subjects.dlq_stream.name
    return [
        f"$JS.API.STREAM.MSG.GET.{dlq}",
        *(
            f"$JS.API.STREAM.MSG.GET.{stream.name}"
            for stream in (subjects.events_stream, subjects.commands_stream)
        ),
        f"$JS.API.STREAM.MSG.DELETE.{dlq}",
        *(f"{subjects.prefix}.{kind}.>" for kind in ("evt", "cmd")),
    ]


def operator_identity(subjects: SubjectMap) -> Identity:
    """`waybill dlq` and people's tools: read and replay dead letters, ask queries.

    Replaying republishes a letter on its original subject, so the operator may
    publish events and commands; it may not create streams, buckets or durables.
    """
    dlq = subjects.dlq_stream.name
    prefix = inbox_prefix(OPERATOR)
    publish = [
        f"$JS.API.STREAM.INFO.{dlq}",
        # `waybill dlq list` reads with an ephemeral consumer and removes it after.
        f"$JS.API.CONSUMER.CREATE.{dlq}",
        f"$JS.API.CONSUMER.CREATE.{dlq}.>",
        f"$JS.API.CONSUMER.INFO.{dlq}.*",
        f"$JS.API.CONSUMER.MSG.NEXT.{dlq}.*",
        f"$JS.API.CONSUMER.DELETE.{dlq}.*",
        f"$JS.ACK.{dlq}.>",
        *_replay_rights(subjects),
        f"{subjects.prefix}.qry.>",
        "$SRV.>",
    ]
    return Identity(
        name=OPERATOR,
        role=OPERATOR,
        inbox_prefix=prefix,
        permissions=Permissions(publish=_sorted(publish), subscribe=[f"{prefix}.>"]),
    )
