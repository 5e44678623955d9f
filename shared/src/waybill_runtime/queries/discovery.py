"""The ADR-32 discovery replies (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`) as typed structs.

The same structs serve the service that answers and the tools or tests that ask,
so the wire shape is written down once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

PING_RESPONSE_TYPE: Final = "io.nats.micro.v1.ping_response"
INFO_RESPONSE_TYPE: Final = "io.nats.micro.v1.info_response"
STATS_RESPONSE_TYPE: Final = "io.nats.micro.v1.stats_response"

# ADR-32 fixes the `$SRV` prefix and the three verbs; every instance listens on
# each verb at three levels: all services, all instances of a name, one instance.
DISCOVERY_PREFIX: Final = "$SRV"
DiscoveryVerb = Literal["PING", "INFO", "STATS"]
DISCOVERY_VERBS: Final[tuple[DiscoveryVerb, ...]] = ("PING", "INFO", "STATS")


def discovery_subjects(verb: DiscoveryVerb, name: str, instance_id: str) -> tuple[str, str, str]:
    """The three subjects on which an instance answers ``verb``, broadest first."""
    everyone = f"{DISCOVERY_PREFIX}.{verb}"
    return everyone, f"{everyone}.{name}", f"{everyone}.{name}.{instance_id}"


class PingResponse(msgspec.Struct, kw_only=True):
    """Reply to `$SRV.PING`: who this instance is (used for discovery and RTT)."""

    type: str = PING_RESPONSE_TYPE
    name: str
    id: str
    version: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class EndpointInfo(msgspec.Struct, kw_only=True):
    """One endpoint as `$SRV.INFO` describes it."""

    name: str
    subject: str
    queue_group: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class InfoResponse(msgspec.Struct, kw_only=True):
    """Reply to `$SRV.INFO`: the instance, its description and its endpoints."""

    type: str = INFO_RESPONSE_TYPE
    name: str
    id: str
    version: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    description: str = ""
    endpoints: list[EndpointInfo] = msgspec.field(default_factory=list)


class EndpointStats(msgspec.Struct, kw_only=True):
    """One endpoint's counters as `$SRV.STATS` reports them; times are nanoseconds."""

    name: str
    subject: str
    queue_group: str
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    processing_time: int = 0
    average_processing_time: int = 0


class StatsResponse(msgspec.Struct, kw_only=True):
    """Reply to `$SRV.STATS`: the instance, when it started and each endpoint's counters."""

    type: str = STATS_RESPONSE_TYPE
    name: str
    id: str
    version: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    started: datetime
    endpoints: list[EndpointStats] = msgspec.field(default_factory=list)
