"""Carrier A's tracking, EasyPost style: Tracker objects, their statuses, signed Event webhooks.

A webhook is an Event (``tracker.created`` / ``tracker.updated``) whose
``result`` is the whole Tracker, history included, so a lost webhook is made
up for by the next one. The body is signed ``X-Hmac-Signature:
hmac-sha256-hex=<hex HMAC-SHA256 of the raw body>`` with the webhook secret
NFKD-normalised, as EasyPost does. The signature has no timestamp, so the
Event's own (signed) ``id`` and ``created_at`` stand in for one: see
:mod:`waybill_carrier_router.replay_guard`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

import msgspec

from waybill_carrier_router.carriers.model import (
    BadTrackingPayload,
    TrackingReport,
    WebhookIdentity,
    as_utc,
)
from waybill_contracts.model import Milestone, MilestoneCode
from waybill_runtime.signatures import SignatureError, verify_hmac_sha256

__all__ = [
    "EASYPOST_MILESTONES",
    "EasyPostWebhooks",
    "Tracker",
    "TrackerEvent",
    "TrackerList",
    "report_of",
]

SIGNATURE_HEADER = "X-Hmac-Signature"
_SIGNATURE_PREFIX = "hmac-sha256-hex="
_RAW_MAX = 128  # Milestone.raw_status / raw_detail are bounded in the contract

#: EasyPost tracker statuses in the canonical vocabulary.
EASYPOST_MILESTONES: dict[str, MilestoneCode] = {
    "pre_transit": MilestoneCode.LABEL_CREATED,
    "in_transit": MilestoneCode.IN_TRANSIT,
    "out_for_delivery": MilestoneCode.OUT_FOR_DELIVERY,
    "available_for_pickup": MilestoneCode.AVAILABLE_FOR_PICKUP,
    "delivered": MilestoneCode.DELIVERED,
    "return_to_sender": MilestoneCode.RETURNED_TO_SENDER,
    "failure": MilestoneCode.EXCEPTION,
    "error": MilestoneCode.EXCEPTION,
    "cancelled": MilestoneCode.CANCELLED,
    "unknown": MilestoneCode.UNKNOWN,
}


class _Location(msgspec.Struct, kw_only=True):
    city: str | None = None
    state: str | None = None
    country: str | None = None


class _TrackingDetail(msgspec.Struct, kw_only=True):
    status: str
    occurred_at: datetime = msgspec.field(name="datetime")
    status_detail: str | None = None
    message: str | None = None
    tracking_location: _Location | None = None


class Tracker(msgspec.Struct, kw_only=True):
    """The part of an EasyPost Tracker the router reads."""

    tracking_code: str
    status: str = "unknown"
    status_detail: str | None = None
    tracking_details: list[_TrackingDetail] = msgspec.field(default_factory=list)


class TrackerList(msgspec.Struct, kw_only=True):
    trackers: list[Tracker]


class TrackerEvent(msgspec.Struct, kw_only=True):
    """A carrier A webhook: an Event whose ``result`` is a Tracker for ``tracker.*`` events."""

    id: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=200,
            description="the Event's id: remembered for the replay window",
        ),
    ]
    created_at: Annotated[
        datetime,
        msgspec.Meta(
            description="when the Event was made: older than the replay window is refused"
        ),
    ]
    description: str
    result: msgspec.Raw


class _EventIdentity(msgspec.Struct, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    created_at: datetime


_decode_event = msgspec.json.Decoder(TrackerEvent).decode
_decode_identity = msgspec.json.Decoder(_EventIdentity).decode
_decode_tracker = msgspec.json.Decoder(Tracker).decode


def _place(location: _Location | None) -> str | None:
    if location is None:
        return None
    parts = [part for part in (location.city, location.state, location.country) if part]
    return ", ".join(parts) or None


def _milestone(detail: _TrackingDetail) -> Milestone:
    return Milestone(
        code=EASYPOST_MILESTONES.get(detail.status, MilestoneCode.UNKNOWN),
        raw_status=detail.status[:_RAW_MAX],
        raw_detail=detail.status_detail[:_RAW_MAX] if detail.status_detail else None,
        occurred_at=as_utc(detail.occurred_at),
        location=_place(detail.tracking_location),
        description=detail.message,
    )


def report_of(tracker: Tracker) -> TrackingReport:
    """A Tracker's scans in Waybill's terms, oldest first."""
    events = sorted((_milestone(d) for d in tracker.tracking_details), key=lambda m: m.occurred_at)
    return TrackingReport(tracking_number=tracker.tracking_code, events=tuple(events))


class EasyPostWebhooks:
    """Verifies and reads carrier A's tracking webhooks."""

    def __init__(self, secret: str) -> None:
        self._key = unicodedata.normalize("NFKD", secret).encode()

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            raise SignatureError(f"{SIGNATURE_HEADER} header missing")
        if not header.startswith(_SIGNATURE_PREFIX):
            raise SignatureError(f"{SIGNATURE_HEADER} does not start with {_SIGNATURE_PREFIX}")
        verify_hmac_sha256(self._key, body, header.removeprefix(_SIGNATURE_PREFIX))

    def read(self, body: bytes) -> TrackingReport | None:
        try:
            event = _decode_event(body)
            if not event.description.startswith("tracker."):
                return None  # other Event types (batches, refunds) carry no tracking
            return report_of(_decode_tracker(event.result))
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise BadTrackingPayload(f"not an EasyPost tracker event: {error}") from None

    def identity(self, body: bytes) -> WebhookIdentity:
        try:
            event = _decode_identity(body)
        except msgspec.ValidationError as error:
            raise BadTrackingPayload(
                f"an EasyPost Event needs its id and created_at (a replay could not be "
                f"recognised without them): {error}"
            ) from None
        except msgspec.DecodeError as error:
            raise BadTrackingPayload(f"not an EasyPost tracker event: {error}") from None
        return WebhookIdentity(id=event.id, created_at=as_utc(event.created_at))
