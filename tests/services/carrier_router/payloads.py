"""Tracking webhook bodies in each carrier's shape, built by hand for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec


def easypost_event(
    *details: tuple[str, str | None, str],
    description: str = "tracker.updated",
    event_id: str | None = None,
    created_at: datetime | None = None,
) -> bytes:
    """An EasyPost Event whose Tracker has ``(status, status_detail, datetime)`` details,
    with its own id, made now unless ``created_at`` says otherwise."""
    tracker = {
        "id": "trk_1",
        "object": "Tracker",
        "tracking_code": "EZ1000000042",
        "status": details[-1][0] if details else "unknown",
        "tracking_details": [
            {
                "object": "TrackingDetail",
                "status": status,
                "status_detail": detail,
                "datetime": moment,
                "message": f"scan {status}",
                "tracking_location": {"city": "Utrecht", "country": "NL"},
            }
            for status, detail, moment in details
        ],
    }
    return msgspec.json.encode(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
            "object": "Event",
            "description": description,
            "result": tracker,
            "created_at": created_at or datetime.now(UTC),
        }
    )


def shippo_track(*history: tuple[str, str | None, str | None]) -> bytes:
    """A Shippo track_updated webhook with ``(status, substatus code, status_date)`` history."""
    statuses: list[dict[str, Any]] = [
        {
            "status": status,
            "status_date": moment,
            "status_details": f"scan {status}",
            "substatus": {"code": code, "text": code} if code else None,
            "location": {"city": "Amsterdam", "state": None, "country": "NL"},
        }
        for status, code, moment in history
    ]
    track = {
        "tracking_number": "92055901755477000042",
        "tracking_status": statuses[-1] if statuses else None,
        "tracking_history": statuses,
    }
    return msgspec.json.encode({"event": "track_updated", "test": True, "data": track})
