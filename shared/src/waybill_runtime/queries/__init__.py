"""Queries: request/reply endpoints served as ADR-32 NATS micro services.

A service answers its queries with :class:`QueryService` (which also answers
`$SRV.PING/INFO/STATS`); another service asks with :func:`ask`. Handlers raise
:class:`QueryError` for a deliberate error reply.
"""

from waybill_runtime.queries.client import ask
from waybill_runtime.queries.discovery import (
    INFO_RESPONSE_TYPE,
    PING_RESPONSE_TYPE,
    STATS_RESPONSE_TYPE,
    EndpointInfo,
    EndpointStats,
    InfoResponse,
    PingResponse,
    StatsResponse,
    discovery_subjects,
)
from waybill_runtime.queries.errors import (
    ERROR_CODE_HEADER,
    ERROR_HEADER,
    QueryError,
    QueryUnansweredError,
)
from waybill_runtime.queries.service import QUEUE_GROUP, QueryService

__all__ = [
    "ERROR_CODE_HEADER",
    "ERROR_HEADER",
    "INFO_RESPONSE_TYPE",
    "PING_RESPONSE_TYPE",
    "QUEUE_GROUP",
    "STATS_RESPONSE_TYPE",
    "EndpointInfo",
    "EndpointStats",
    "InfoResponse",
    "PingResponse",
    "QueryError",
    "QueryService",
    "QueryUnansweredError",
    "StatsResponse",
    "ask",
    "discovery_subjects",
]
