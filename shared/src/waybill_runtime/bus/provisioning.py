"""Idempotent provisioning of the streams, consumers and KV buckets a service declares.

Every name comes from the subject map. Provisioning creates what is missing
and accepts what already matches; a stream that exists with a different
configuration is reported with the difference and left alone, because
silently changing retention or storage under running services can lose
messages. A service's own durable consumer is updated in place (its filter
changes when the service starts handling a new message type).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from waybill_contracts import SubjectMap
from waybill_runtime.declaration import Declaration
from waybill_runtime.errors import UserFacingError
from waybill_runtime.settings import RuntimeSettings, env_var_name, load_settings

log = logging.getLogger("waybill.bus")

DAY_S = 86_400.0


class ProvisioningConflict(UserFacingError):
    """A stream exists with a configuration other than the one Waybill declares."""


class ProvisioningRefused(UserFacingError):
    """JetStream refused to create a stream or bucket (too many replicas, limits, no JetStream)."""


def _refused(what: str, error: APIError, replicas: int) -> ProvisioningRefused:
    return ProvisioningRefused(
        f"JetStream refused to create {what} ({error.description or error}, code {error.code}): "
        f"check WAYBILL_STREAM_REPLICAS={replicas} against the number of NATS servers, and the "
        "account's JetStream limits"
    )


@dataclass(frozen=True, kw_only=True)
class StreamPolicy:
    """Retention and durability settings for Waybill's streams (from the service settings)."""

    events_max_age_s: float = 14 * DAY_S
    commands_max_age_s: float = 7 * DAY_S
    dead_letters_max_age_s: float = 30 * DAY_S
    # JetStream drops a message whose Nats-Msg-Id it saw within this window:
    # the design asks for at least two minutes.
    duplicate_window_s: float = 120.0
    replicas: int = 1


def stream_configs(subjects: SubjectMap, policy: StreamPolicy) -> list[StreamConfig]:
    """The three streams of a Waybill installation: events, commands, dead letters."""
    events, commands, dlq = subjects.events_stream, subjects.commands_stream, subjects.dlq_stream
    common = {
        "storage": StorageType.FILE,
        "duplicate_window": policy.duplicate_window_s,
        "num_replicas": policy.replicas,
    }
    return [
        StreamConfig(
            name=events.name,
            subjects=list(events.subjects),
            retention=RetentionPolicy.LIMITS,
            max_age=policy.events_max_age_s,
            **common,  # type: ignore[arg-type]
        ),
        # Limits, not work-queue, retention: each command still has one owner
        # (the owner's durable consumer is filtered on its subjects), but an
        # audit trail must read every command too, and a work-queue stream allows
        # no second consumer. Acked commands age out instead of vanishing.
        StreamConfig(
            name=commands.name,
            subjects=list(commands.subjects),
            retention=RetentionPolicy.LIMITS,
            max_age=policy.commands_max_age_s,
            **common,  # type: ignore[arg-type]
        ),
        StreamConfig(
            name=dlq.name,
            subjects=list(dlq.subjects),
            retention=RetentionPolicy.LIMITS,
            max_age=policy.dead_letters_max_age_s,
            **common,  # type: ignore[arg-type]
        ),
    ]


def _differences(wanted: StreamConfig, actual: StreamConfig) -> list[str]:
    checks: list[tuple[str, object, object]] = [
        ("subjects", sorted(wanted.subjects or []), sorted(actual.subjects or [])),
        ("retention", wanted.retention, actual.retention),
        ("storage", wanted.storage, actual.storage),
        ("duplicate_window", wanted.duplicate_window, actual.duplicate_window),
        ("max_age", wanted.max_age or 0.0, actual.max_age or 0.0),
        ("num_replicas", wanted.num_replicas, actual.num_replicas),
    ]
    return [
        f"{name}: has {_show(got)}, Waybill expects {_show(want)}"
        for name, want, got in checks
        if want != got
    ]


def _show(value: object) -> str:
    return str(getattr(value, "value", value))


async def ensure_stream(js: JetStreamContext, wanted: StreamConfig) -> None:
    """Create ``wanted`` if missing; raise :class:`ProvisioningConflict` if it differs."""
    assert wanted.name is not None
    try:
        info = await js.stream_info(wanted.name)
    except NotFoundError:
        try:
            await js.add_stream(wanted)
        except APIError as error:
            raise _refused(f"stream {wanted.name}", error, wanted.num_replicas or 1) from None
        log.info("created stream %s", wanted.name)
        return
    differences = _differences(wanted, info.config)
    if differences:
        raise ProvisioningConflict(
            f"stream {wanted.name} exists with another configuration ({'; '.join(differences)}): "
            "Waybill does not change existing streams; edit or recreate it deliberately"
        )


async def ensure_streams(js: JetStreamContext, subjects: SubjectMap, policy: StreamPolicy) -> None:
    for config in stream_configs(subjects, policy):
        await ensure_stream(js, config)


async def ensure_bucket(
    js: JetStreamContext,
    bucket: str,
    *,
    ttl_s: float | None = None,
    history: int = 1,
    replicas: int = 1,
) -> KeyValue:
    """Bind to KV bucket ``bucket``, creating it when missing."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        config = KeyValueConfig(
            bucket=bucket, ttl=ttl_s, history=history, storage=StorageType.FILE, replicas=replicas
        )
        try:
            kv = await js.create_key_value(config)
        except APIError as error:
            raise _refused(f"KV bucket {bucket}", error, replicas) from None
        log.info("created KV bucket %s", bucket)
        return kv


@dataclass(frozen=True, kw_only=True)
class ConsumerPolicy:
    """Flow control and redelivery for a service's durable pull consumers."""

    max_ack_pending: int = 1000
    max_deliver: int = 8
    # How long the server waits for an ack before redelivering; a handler that
    # runs longer keeps its message with in-progress acks.
    ack_wait_s: float = 30.0


async def ensure_consumer(
    js: JetStreamContext,
    *,
    stream: str,
    durable: str,
    filter_subjects: list[str],
    policy: ConsumerPolicy,
    new_messages_only: bool = False,
) -> None:
    """Create or update the durable pull consumer ``durable`` on ``stream``.

    ``new_messages_only`` applies when the consumer is created: it then starts
    at the next message instead of the stream's history. A consumer's start
    cannot change later, so an existing one keeps its own.
    """
    deliver = DeliverPolicy.NEW if new_messages_only else DeliverPolicy.ALL
    try:
        existing = await js.consumer_info(stream, durable)
    except NotFoundError:
        pass
    else:
        deliver = existing.config.deliver_policy or deliver
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=deliver,
        max_ack_pending=policy.max_ack_pending,
        max_deliver=policy.max_deliver,
        ack_wait=policy.ack_wait_s,
        filter_subjects=sorted(filter_subjects) if len(filter_subjects) > 1 else None,
        filter_subject=filter_subjects[0] if len(filter_subjects) == 1 else None,
    )
    # add_consumer on an existing durable updates its mutable fields
    # (filters, limits); that is the service's own consumer, so this is safe.
    await js.add_consumer(stream, config)


# -- everything one service declares ---------------------------------------------------


class NotProvisioned(UserFacingError):
    """A service that may not provision found a stream, bucket or durable missing."""


def _by_durable(declaration: Declaration, subjects: SubjectMap) -> dict[tuple[str, str], list[str]]:
    """The service's durables (stream, name) with the subjects each is filtered on."""
    durables: dict[tuple[str, str], list[str]] = {}
    whole = {s.name: list(s.subjects) for s in (subjects.events_stream, subjects.commands_stream)}
    for consumed in declaration.consumes:
        filters = durables.setdefault((consumed.stream, consumed.durable), [])
        if declaration.watches_mesh:
            # It handles every type there, and takes what no contract names too.
            filters[:] = whole[consumed.stream]
        else:
            filters.append(consumed.subject)
    if declaration.consumes_dead_letters:
        key = (subjects.dlq_stream.name, subjects.durable(declaration.name, "dead-letters"))
        durables[key] = list(subjects.dlq_stream.subjects)
    return durables


def _buckets(
    declaration: Declaration, subjects: SubjectMap, *, tracing: bool, traces_ttl_s: float
) -> dict[str, tuple[str, float | None]]:
    """Purpose -> (bucket, ttl) of every bucket the service uses."""
    buckets = {b.purpose: (b.bucket, b.ttl_s) for b in declaration.buckets}
    if tracing:
        # Each order's trace, kept as long as its events are.
        buckets["traces"] = (subjects.kv_bucket("traces"), traces_ttl_s)
    return buckets


async def provision_service(
    js: JetStreamContext,
    declaration: Declaration,
    subjects: SubjectMap,
    *,
    streams: StreamPolicy,
    consumers: ConsumerPolicy,
    tracing: bool,
) -> dict[str, KeyValue]:
    """Create (or accept) the streams, buckets and durables of one service; its buckets by purpose.

    Needs stream-admin rights: `waybill provision` and services run with
    WAYBILL_PROVISION=auto call it.
    """
    await ensure_streams(js, subjects, streams)
    bound = {
        purpose: await ensure_bucket(js, bucket, ttl_s=ttl_s, replicas=streams.replicas)
        for purpose, (bucket, ttl_s) in _buckets(
            declaration, subjects, tracing=tracing, traces_ttl_s=streams.events_max_age_s
        ).items()
    }
    events = subjects.events_stream.name
    for (stream, durable), filters in _by_durable(declaration, subjects).items():
        await ensure_consumer(
            js,
            stream=stream,
            durable=durable,
            filter_subjects=filters,
            policy=consumers,
            new_messages_only=declaration.new_events_only and stream == events,
        )
    return bound


async def bind_service(
    js: JetStreamContext,
    declaration: Declaration,
    subjects: SubjectMap,
    *,
    tracing: bool,
) -> dict[str, KeyValue]:
    """Bind to the buckets and check the durables of one service, creating nothing.

    What a service with WAYBILL_PROVISION=never does: it needs no stream-admin
    rights, only those its permissions grant (bucket info, consumer info).
    """
    bound = {}
    for purpose, (bucket, _) in _buckets(
        declaration, subjects, tracing=tracing, traces_ttl_s=0.0
    ).items():
        try:
            bound[purpose] = await js.key_value(bucket)
        except BucketNotFoundError:
            raise NotProvisioned(
                f"KV bucket {bucket} does not exist and {declaration.name} may not create it: "
                "run `waybill provision` (or set WAYBILL_PROVISION=auto with admin rights)"
            ) from None
    for stream, durable in _by_durable(declaration, subjects):
        try:
            await js.consumer_info(stream, durable)
        except NotFoundError:
            raise NotProvisioned(
                f"durable consumer {durable} on stream {stream} does not exist and "
                f"{declaration.name} may not create it: run `waybill provision` (or set "
                "WAYBILL_PROVISION=auto with admin rights)"
            ) from None
    return bound


def stream_policy(settings: RuntimeSettings) -> StreamPolicy:
    """The streams' retention and replicas as the settings say."""
    return StreamPolicy(
        events_max_age_s=settings.events_retention_days * DAY_S,
        commands_max_age_s=settings.commands_retention_days * DAY_S,
        dead_letters_max_age_s=settings.dead_letters_retention_days * DAY_S,
        duplicate_window_s=settings.duplicate_window_s,
        replicas=settings.stream_replicas,
    )


def consumer_policy(settings: RuntimeSettings) -> ConsumerPolicy:
    """The durables' flow control and redelivery as the settings say."""
    return ConsumerPolicy(
        max_ack_pending=settings.max_ack_pending, max_deliver=settings.max_deliver
    )


# The settings a service's durables are made with, which a service may default differently.
CONSUMER_LIMIT_SETTINGS = (env_var_name("max_deliver"), env_var_name("max_ack_pending"))


def declared_consumer_policy(
    declaration: Declaration, environ: Mapping[str, str]
) -> ConsumerPolicy:
    """The limits of a service's durables: what ``environ`` sets, else the service's own defaults.

    A service may default them differently from the runtime (the notifier, which
    waits out slow webhook endpoints, redelivers 40 times, not 8); provisioning
    for it must not fall back to the runtime's.
    """
    limits = {
        s.env_var: s.default
        for s in declaration.settings
        if s.env_var in CONSUMER_LIMIT_SETTINGS and s.default is not None
    }
    limits.update({v: environ[v] for v in CONSUMER_LIMIT_SETTINGS if environ.get(v, "").strip()})
    return consumer_policy(load_settings(RuntimeSettings, limits, service=declaration.name))


async def provision_mesh(
    js: JetStreamContext,
    declarations: list[Declaration],
    settings: RuntimeSettings,
    *,
    environ: Mapping[str, str] | None = None,
    tracing: bool = True,
) -> None:
    """Everything the services of ``declarations`` need, made with admin rights.

    `waybill provision` and `waybill up` call it before services start with
    WAYBILL_PROVISION=never. Each service's durables get its own consumer
    limits unless ``environ`` sets them (:func:`declared_consumer_policy`).
    ``tracing`` makes the shared traces bucket too, so OpenTelemetry can be
    switched on without another provisioning.
    """
    subjects = SubjectMap(settings.subject_prefix)
    for declaration in declarations:
        await provision_service(
            js,
            declaration,
            subjects,
            streams=stream_policy(settings),
            consumers=declared_consumer_policy(declaration, environ or {}),
            tracing=tracing,
        )
        log.info("provisioned %s", declaration.name)
