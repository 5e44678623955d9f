"""Waybill's message contracts: the logistics model, the messages, the envelope, the subject map.

Install alone (``pip install waybill-contracts``; msgspec is the only
dependency) to build a service that speaks Waybill::

    from waybill_contracts import SubjectMap, decode, encode, new_context
    from waybill_contracts.events import OrderReleased

Message types live in :mod:`waybill_contracts.events`,
:mod:`~waybill_contracts.commands` and :mod:`~waybill_contracts.queries`;
the canonical structs in :mod:`waybill_contracts.model`; the order stages in
:mod:`waybill_contracts.stages`.
"""

from __future__ import annotations

from waybill_contracts.catalog import MESSAGE_TYPES, ce_type_for, message_type_for_ce_type
from waybill_contracts.envelope import (
    Decoded,
    Encoded,
    MessageContext,
    decode,
    encode,
    fact_id,
    new_context,
    new_id,
    validate,
)
from waybill_contracts.errors import (
    ContractError,
    InvalidHeader,
    MalformedBody,
    MissingHeader,
    UnknownSubject,
    UnknownType,
)
from waybill_contracts.lanes import Lane, order_lane
from waybill_contracts.messages import (
    Command,
    Event,
    Message,
    MessageKind,
    QueryRequest,
    QueryResponse,
    order_ref_of,
)
from waybill_contracts.services import SERVICES, Service
from waybill_contracts.stages import OrderStage
from waybill_contracts.subjects import KV_PURPOSES, KV_TTL_S, Channel, StreamSpec, SubjectMap

__all__ = [
    "KV_PURPOSES",
    "KV_TTL_S",
    "MESSAGE_TYPES",
    "SERVICES",
    "Channel",
    "Command",
    "ContractError",
    "Decoded",
    "Encoded",
    "Event",
    "InvalidHeader",
    "Lane",
    "MalformedBody",
    "Message",
    "MessageContext",
    "MessageKind",
    "MissingHeader",
    "OrderStage",
    "QueryRequest",
    "QueryResponse",
    "Service",
    "StreamSpec",
    "SubjectMap",
    "UnknownSubject",
    "UnknownType",
    "ce_type_for",
    "decode",
    "encode",
    "fact_id",
    "message_type_for_ce_type",
    "new_context",
    "new_id",
    "order_lane",
    "order_ref_of",
    "validate",
]
