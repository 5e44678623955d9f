"""What every message is: its kind, its name on the wire and its business key.

Events say "this happened" (past tense) and have any number of consumers.
Commands say "do this" and have exactly one owner. Queries ask for current
state and get an answer now. The ``ce-type`` of a message is derived from
class metadata here; the subject (which depends on the configurable prefix)
is derived in :mod:`waybill_contracts.subjects`.

Subclasses set the ClassVars, declare ``frozen=True, kw_only=True`` (msgspec
does not inherit ``kw_only``) and implement :meth:`Message.business_key`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from waybill_contracts.record import Record
from waybill_contracts.services import Service

CE_TYPE_NAMESPACE = "io.waybill"
"""Every ``ce-type`` starts with this; it never includes the subject prefix."""


class MessageKind(StrEnum):
    """The three kinds of message, which live in separate streams and subjects."""

    EVENT = "event"
    COMMAND = "command"
    QUERY = "query"


class Message(Record, frozen=True, kw_only=True):
    """Base of every message body.

    ``name`` is the event (``released``), the command's action
    (``book_shipment``) or the query (``order_status``); ``version`` is the
    major version, bumped only for a breaking change, which then gets a new
    subject beside the old one.
    """

    kind: ClassVar[MessageKind]
    name: ClassVar[str]
    version: ClassVar[int] = 1

    @classmethod
    def ce_type(cls) -> str:
        """The CloudEvents ``type`` of this message, e.g. ``io.waybill.order.released.v1``."""
        raise NotImplementedError(f"{cls.__name__} is not a concrete message kind")

    def business_key(self) -> str:
        """The entity this message is about (order ref, shipment id): ``ce-subject``."""
        raise NotImplementedError(f"{type(self).__name__} must define business_key()")

    def correlation_key(self) -> str:
        """The business transaction it belongs to (``ce-correlationid``) when no cause says so.

        Normally the order ref; messages about shipments override this.
        """
        return self.business_key()


def order_ref_of(message: Message) -> str | None:
    """The order a message is about, or None (product batches, stock, exceptions without one).

    Orders appear three ways in the contracts: a whole ``order`` (its ``ref``),
    a ``shipment`` (its ``order_ref``), or an ``order_ref`` field.
    """
    order = getattr(message, "order", None)
    if order is not None and isinstance(getattr(order, "ref", None), str):
        return str(order.ref)
    shipment = getattr(message, "shipment", None)
    if shipment is not None and isinstance(getattr(shipment, "order_ref", None), str):
        return str(shipment.order_ref)
    ref = getattr(message, "order_ref", None)
    return ref if isinstance(ref, str) and ref else None


class Event(Message, frozen=True, kw_only=True):
    """A fact, named in the past tense, about an ``aggregate`` (order, shipment, ...)."""

    kind: ClassVar[MessageKind] = MessageKind.EVENT
    aggregate: ClassVar[str]
    publishers: ClassVar[tuple[Service, ...]]
    """The services that may publish this event (the basis for NATS publish permissions)."""

    @classmethod
    def ce_type(cls) -> str:
        return f"{CE_TYPE_NAMESPACE}.{cls.aggregate}.{cls.name}.v{cls.version}"


class Command(Message, frozen=True, kw_only=True):
    """An instruction with exactly one owner (``service``) and declared ``senders``.

    ``owner`` is the subject token (``carrier``).
    """

    kind: ClassVar[MessageKind] = MessageKind.COMMAND
    owner: ClassVar[str]
    service: ClassVar[Service]
    """The one service that executes this command."""
    senders: ClassVar[tuple[Service, ...]]
    """The services that may send this command (the basis for NATS publish permissions)."""

    @classmethod
    def ce_type(cls) -> str:
        return f"{CE_TYPE_NAMESPACE}.cmd.{cls.owner}.{cls.name}.v{cls.version}"


class QueryResponse(Message, frozen=True, kw_only=True):
    """The answer to a :class:`QueryRequest`, sent to the requester's reply inbox."""

    kind: ClassVar[MessageKind] = MessageKind.QUERY
    service: ClassVar[Service]
    """The service that answers."""

    @classmethod
    def ce_type(cls) -> str:
        return f"{CE_TYPE_NAMESPACE}.qry.{cls.service}.{cls.name}.response.v{cls.version}"


class QueryRequest(Message, frozen=True, kw_only=True):
    """A question to one service, answered at once with ``response_type``."""

    kind: ClassVar[MessageKind] = MessageKind.QUERY
    service: ClassVar[Service]
    """The service that answers."""
    response_type: ClassVar[type[QueryResponse]]

    @classmethod
    def ce_type(cls) -> str:
        return f"{CE_TYPE_NAMESPACE}.qry.{cls.service}.{cls.name}.request.v{cls.version}"
