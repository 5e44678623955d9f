"""The subject map: the single source of every subject, stream, consumer and bucket name.

The prefix (``waybill`` by default) is configurable so that several
environments can share one NATS account; it is the first token of every
subject and the start of every stream and bucket name. Nothing elsewhere in
Waybill spells a subject out.

Subjects never contain ids (the business key travels in ``ce-subject``), so
every subject of the map is already a low-cardinality name fit for span
names; :meth:`SubjectMap.subject_template` only folds reply inboxes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from waybill_contracts import catalog
from waybill_contracts.errors import UnknownSubject
from waybill_contracts.lanes import Lane
from waybill_contracts.messages import Command, Event, Message, QueryRequest, QueryResponse
from waybill_contracts.services import SERVICES, Service

DEFAULT_PREFIX = "waybill"
_DAY_S = 86_400.0
KV_TTL_S: Mapping[str, float | None] = MappingProxyType(
    {
        # Process state: kept as long as the order matters; no expiry.
        "workflow": None,
        # Effects made once: a redelivery or re-sent command comes within days.
        "idempotency": 7 * _DAY_S,
        # Poll watermarks and "already announced" markers must outlive any edit.
        "watermarks": None,
        # Each order's trace context, as long as the events stream keeps events
        # by default (the runtime uses the configured events retention).
        "traces": 14 * _DAY_S,
        # Customer contacts (personal data): long enough for an order to be
        # delivered and notified, not forever.
        "contacts": 30 * _DAY_S,
        # Tracking progress per label: carriers report for weeks, returns included.
        "tracking": 90 * _DAY_S,
    }
)
"""Per key-value bucket purpose, how long an entry lives after its last write (None: for ever).

The runtime creates each bucket with its purpose's TTL; a bucket that
exists already keeps the limits it was created with.
"""
KV_PURPOSES: tuple[str, ...] = tuple(KV_TTL_S)
"""The key-value buckets: process state, idempotency keys, sync watermarks, each order's
trace, customer contacts, tracking progress."""

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_EXPRESS_SUFFIX = f".{Lane.EXPRESS}"
_INBOX_PREFIX = "_INBOX."
TEMPORARY_DESTINATION = "(temporary)"
"""Span destination used for reply inboxes, whose names are unique per request."""


class StreamSpec(NamedTuple):
    """A JetStream stream's name and the subjects it captures."""

    name: str
    subjects: tuple[str, ...]


class Channel(NamedTuple):
    """One subject and the message types it carries (a query: request, then response)."""

    subject: str
    message_types: tuple[type[Message], ...]


def _require_token(what: str, value: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a single NATS subject token: use letters, digits, _ or -"
        )
    return value


class SubjectMap:
    """Every NATS name Waybill uses, for one prefix."""

    __slots__ = ("_channels", "_laned", "_prefix", "_subject_of", "_type_on")

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self._prefix = _require_token("subject prefix", prefix)
        self._subject_of: dict[type[Message], str] = {}
        self._type_on: dict[str, type[Message]] = {}
        channels: dict[str, list[type[Message]]] = {}
        for message_type in catalog.MESSAGE_TYPES:
            subject = self._build_subject(message_type)
            self._subject_of[message_type] = subject
            channels.setdefault(subject, []).append(message_type)
            # A query subject is addressed by its request; the response goes to an inbox.
            if not issubclass(message_type, QueryResponse):
                self._type_on[subject] = message_type
        # Events and commands have an express twin (see waybill_contracts.lanes).
        self._laned = {
            subject + _EXPRESS_SUFFIX: subject
            for subject, message_type in self._type_on.items()
            if issubclass(message_type, Event | Command)
        }
        self._channels = tuple(Channel(s, tuple(types)) for s, types in channels.items())

    def _build_subject(self, message_type: type[Message]) -> str:
        p = self._prefix
        version = f"v{message_type.version}"
        if issubclass(message_type, Event):
            return f"{p}.evt.{message_type.aggregate}.{message_type.name}.{version}"
        if issubclass(message_type, Command):
            return f"{p}.cmd.{message_type.owner}.{message_type.name}.{version}"
        if issubclass(message_type, QueryRequest | QueryResponse):
            return self.query_subject(message_type.service, message_type.name)
        raise TypeError(f"{message_type.__qualname__} is neither event, command nor query")

    def __repr__(self) -> str:
        return f"SubjectMap(prefix={self._prefix!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubjectMap) and other._prefix == self._prefix

    def __hash__(self) -> int:
        return hash(self._prefix)

    @property
    def prefix(self) -> str:
        """The first token of every subject."""
        return self._prefix

    @property
    def services(self) -> tuple[Service, ...]:
        """The services of the mesh."""
        return SERVICES

    # --- messages ---------------------------------------------------------------

    def subject_for(self, message_type: type[Message]) -> str:
        """The subject a message type is published on (for a query response: its query)."""
        try:
            return self._subject_of[message_type]
        except (KeyError, TypeError):
            raise catalog.not_in_catalog(message_type) from None

    def message_type_for_subject(self, subject: str) -> type[Message]:
        """The message type a subject carries; :class:`UnknownSubject` otherwise."""
        message_type = self.find_message_type(subject)
        if message_type is None:
            raise UnknownSubject(
                f"no message type is carried by subject {subject!r}", field="subject"
            )
        return message_type

    def find_message_type(self, subject: str) -> type[Message] | None:
        """Like :meth:`message_type_for_subject`, but ``None`` for subjects outside the map.

        An express twin carries what its standard subject carries.
        """
        try:
            return self._type_on.get(subject) or self._type_on.get(self._laned.get(subject, ""))
        except TypeError:  # unhashable
            return None

    # --- lanes ------------------------------------------------------------------

    def on_lane(self, subject: str, lane: Lane) -> str:
        """``subject`` as published on ``lane`` (a query, or a subject outside the map: as is)."""
        if lane is Lane.EXPRESS and (twin := subject + _EXPRESS_SUFFIX) in self._laned:
            return twin
        return subject

    def lane_of(self, subject: str) -> Lane:
        """The lane a message delivered on ``subject`` travels on."""
        return Lane.EXPRESS if subject in self._laned else Lane.STANDARD

    def lane_subjects(self, subject: str) -> tuple[str, ...]:
        """``subject`` on every lane it has: an event or command twice, anything else once."""
        twin = subject + _EXPRESS_SUFFIX
        return (subject, twin) if twin in self._laned else (subject,)

    def message_type_for_ce_type(self, ce_type: str) -> type[Message]:
        """The message type of a ``ce-type``; :class:`UnknownType` otherwise."""
        return catalog.message_type_for_ce_type(ce_type)

    def ce_type_for(self, message_type: type[Message]) -> str:
        """The ``ce-type`` of a message type (it does not depend on the prefix)."""
        return catalog.ce_type_for(message_type)

    @property
    def channels(self) -> tuple[Channel, ...]:
        """Every message subject with the types it carries, in catalog order."""
        return self._channels

    # --- streams, consumers, buckets -----------------------------------------------

    def _stream(self, suffix: str, token: str) -> StreamSpec:
        return StreamSpec(f"{self._prefix.upper()}_{suffix}", (f"{self._prefix}.{token}.>",))

    @property
    def events_stream(self) -> StreamSpec:
        """All events (limits retention)."""
        return self._stream("EVENTS", "evt")

    @property
    def commands_stream(self) -> StreamSpec:
        """All commands (work-queue retention: one owner consumes each)."""
        return self._stream("COMMANDS", "cmd")

    @property
    def dlq_stream(self) -> StreamSpec:
        """Dead letters of every service."""
        return self._stream("DLQ", "dlq")

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        """Every stream of the mesh."""
        return (self.events_stream, self.commands_stream, self.dlq_stream)

    def dlq_subject(self, service: str) -> str:
        """Where a service's dead letters go: ``<prefix>.dlq.<service>``."""
        return f"{self._prefix}.dlq.{_require_token('service', service)}"

    def query_subject(self, service: str, query: str) -> str:
        """A query endpoint: ``<prefix>.qry.<service>.<query>``."""
        service = _require_token("service", service)
        return f"{self._prefix}.qry.{service}.{_require_token('query', query)}"

    def query_service_name(self, service: str) -> str:
        """The NATS micro service name of a service; the prefix keeps environments apart."""
        return f"{self._prefix}-{_require_token('service', service)}"

    def durable(self, service: str, purpose: str, lane: Lane = Lane.STANDARD) -> str:
        """A durable consumer name, e.g. ``orchestrator-events``, shared by a service's replicas.

        Streams are per prefix, so durable names need no prefix of their own.
        The express lane's durable has the lane at the end (``orchestrator-events-express``).
        """
        name = f"{_require_token('service', service)}-{_require_token('purpose', purpose)}"
        return name if lane is Lane.STANDARD else f"{name}-{lane}"

    def kv_bucket(self, purpose: str) -> str:
        """A key-value bucket name, e.g. ``waybill_workflow``; purposes are :data:`KV_PURPOSES`."""
        if purpose not in KV_PURPOSES:
            raise ValueError(
                f"unknown key-value bucket purpose {purpose!r}: use one of {', '.join(KV_PURPOSES)}"
            )
        return f"{self._prefix}_{purpose}"

    def advisory_subjects(self) -> tuple[str, ...]:
        """JetStream advisories for messages that exhausted their deliveries or were terminated."""
        return tuple(
            f"$JS.EVENT.ADVISORY.CONSUMER.{kind}.{stream.name}.*"
            for stream in (self.events_stream, self.commands_stream)
            for kind in ("MAX_DELIVERIES", "MSG_TERMINATED")
        )

    def subject_template(self, subject: str) -> str:
        """A low-cardinality name for a subject, for span names and metric labels.

        Waybill subjects carry no ids, so they are their own template; an
        express twin folds into its standard subject, reply inboxes, unique per
        request, into ``(temporary)``.
        """
        if subject.startswith(_INBOX_PREFIX):
            return TEMPORARY_DESTINATION
        # Both lanes of a subject are one destination (the lane is not a label).
        return self._laned.get(subject, subject)
