"""Carrier B's tracking, Shippo style: Track objects, their statuses, signed webhooks.

A ``track_updated`` webhook carries the whole Track, ``tracking_history``
included, so a lost webhook is made up for by the next one. It is signed
``X-Shippo-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">``;
the timestamp is bound into the signature, so a stale one is a replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec

from waybill_carrier_router.carriers.model import BadTrackingPayload, TrackingReport, as_utc
from waybill_contracts.model import Milestone, MilestoneCode
from waybill_runtime.signatures import SignatureError, check_timestamp, verify_hmac_sha256

__all__ = ["SHIPPO_MILESTONES", "ShippoWebhooks", "Track", "TrackWebhook", "report_of"]

SIGNATURE_HEADER = "X-Shippo-Signature"
_RAW_MAX = 128

#: Shippo statuses in the canonical vocabulary.
SHIPPO_MILESTONES: dict[str, MilestoneCode] = {
    "PRE_TRANSIT": MilestoneCode.LABEL_CREATED,
    "TRANSIT": MilestoneCode.IN_TRANSIT,
    "DELIVERED": MilestoneCode.DELIVERED,
    "RETURNED": MilestoneCode.RETURNED_TO_SENDER,
    "FAILURE": MilestoneCode.EXCEPTION,
    "UNKNOWN": MilestoneCode.UNKNOWN,
}
#: Substatus codes that say more than their status (TRANSIT covers several milestones).
SHIPPO_SUBSTATUS_MILESTONES: dict[str, MilestoneCode] = {
    "out_for_delivery": MilestoneCode.OUT_FOR_DELIVERY,
    "delivery_attempted": MilestoneCode.DELIVERY_ATTEMPT_FAILED,
    "pickup_available": MilestoneCode.AVAILABLE_FOR_PICKUP,
    "return_to_sender": MilestoneCode.RETURNED_TO_SENDER,
}


class _Substatus(msgspec.Struct, kw_only=True):
    code: str
    text: str | None = None


class _Location(msgspec.Struct, kw_only=True):
    city: str | None = None
    state: str | None = None
    country: str | None = None


class _Status(msgspec.Struct, kw_only=True):
    status: str
    status_date: datetime | None = None
    status_details: str | None = None
    substatus: _Substatus | None = None
    location: _Location | None = None


class Track(msgspec.Struct, kw_only=True):
    """The part of a Shippo Track the router reads."""

    tracking_number: str
    tracking_status: _Status | None = None
    tracking_history: list[_Status] = msgspec.field(default_factory=list)


class TrackWebhook(msgspec.Struct, kw_only=True):
    """A carrier B webhook: ``data`` is a Track for ``track_updated`` events."""

    event: str
    data: msgspec.Raw


_decode_webhook = msgspec.json.Decoder(TrackWebhook).decode
_decode_track = msgspec.json.Decoder(Track).decode


def _code(status: _Status) -> MilestoneCode:
    if status.substatus is not None and status.substatus.code in SHIPPO_SUBSTATUS_MILESTONES:
        return SHIPPO_SUBSTATUS_MILESTONES[status.substatus.code]
    return SHIPPO_MILESTONES.get(status.status, MilestoneCode.UNKNOWN)


def _place(location: _Location | None) -> str | None:
    if location is None:
        return None
    parts = [part for part in (location.city, location.state, location.country) if part]
    return ", ".join(parts) or None


def report_of(track: Track) -> TrackingReport:
    """A Track's scans in Waybill's terms, oldest first (scans without a date are skipped)."""
    history = track.tracking_history or ([track.tracking_status] if track.tracking_status else [])
    events = [
        Milestone(
            code=_code(status),
            raw_status=status.status[:_RAW_MAX],
            raw_detail=status.substatus.code[:_RAW_MAX] if status.substatus else None,
            occurred_at=as_utc(status.status_date),
            location=_place(status.location),
            description=status.status_details,
        )
        for status in history
        if status.status_date is not None
    ]
    events.sort(key=lambda m: m.occurred_at)
    return TrackingReport(tracking_number=track.tracking_number, events=tuple(events))


def _signature_parts(header: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name and value:
            parts[name] = value
    return parts


class ShippoWebhooks:
    """Verifies and reads carrier B's tracking webhooks."""

    def __init__(self, secret: str, *, tolerance_s: float = 300.0) -> None:
        self._key = secret.encode()
        self._tolerance_s = tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            raise SignatureError(f"{SIGNATURE_HEADER} header missing")
        parts = _signature_parts(header)
        stamp = parts.get("t")
        check_timestamp(stamp, tolerance_s=self._tolerance_s)
        # The timestamp is signed as sent, so it is used as text, not re-formatted.
        verify_hmac_sha256(self._key, f"{stamp}.".encode() + body, parts.get("v1"))

    def read(self, body: bytes) -> TrackingReport | None:
        try:
            webhook = _decode_webhook(body)
            if webhook.event != "track_updated":
                return None  # transaction and batch events carry no tracking
            return report_of(_decode_track(webhook.data))
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise BadTrackingPayload(f"not a Shippo track_updated webhook: {error}") from None

    def identity(self, body: bytes) -> None:
        return None  # the signed timestamp is checked with the signature
