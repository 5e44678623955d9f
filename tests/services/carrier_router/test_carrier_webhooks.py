"""Each carrier's webhook signature scheme and status vocabulary, checked without a network."""

from __future__ import annotations

import time

import msgspec
import pytest

from tests.services.carrier_router.payloads import easypost_event, shippo_track
from waybill_carrier_router.carriers import BadTrackingPayload, EasyPostWebhooks, ShippoWebhooks
from waybill_contracts.model import MilestoneCode
from waybill_runtime.signatures import SignatureError
from waybill_sandboxes.signing import easypost_signature_headers, shippo_signature_headers

C = MilestoneCode
SECRET = "sécret-clé"  # accented on purpose: carrier A normalises secrets (NFKD)


# -- carrier A (EasyPost style) ---------------------------------------------------------


def test_carrier_a_signature_of_the_raw_body_is_accepted() -> None:
    body = easypost_event(("pre_transit", "label_created", "2025-03-14T09:00:00Z"))
    EasyPostWebhooks(SECRET).verify(easypost_signature_headers(SECRET, body), body)


@pytest.mark.parametrize(
    ("headers", "complaint"),
    [
        ({}, "header missing"),
        ({"X-Hmac-Signature": "sha256=abcd"}, "does not start with"),
        ({"X-Hmac-Signature": "hmac-sha256-hex=zz"}, "not valid hex"),
        ({"X-Hmac-Signature": "hmac-sha256-hex=" + "00" * 32}, "does not match"),
    ],
)
def test_carrier_a_bad_signatures_are_refused(headers: dict[str, str], complaint: str) -> None:
    body = easypost_event(("pre_transit", None, "2025-03-14T09:00:00Z"))
    with pytest.raises(SignatureError, match=complaint):
        EasyPostWebhooks(SECRET).verify(headers, body)


def test_carrier_a_signature_of_another_body_or_secret_is_refused() -> None:
    body = easypost_event(("pre_transit", None, "2025-03-14T09:00:00Z"))
    headers = easypost_signature_headers(SECRET, body)
    with pytest.raises(SignatureError):
        EasyPostWebhooks(SECRET).verify(headers, body.replace(b"pre_transit", b"delivered"))
    with pytest.raises(SignatureError):
        EasyPostWebhooks("another secret").verify(headers, body)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("pre_transit", C.LABEL_CREATED),
        ("in_transit", C.IN_TRANSIT),
        ("out_for_delivery", C.OUT_FOR_DELIVERY),
        ("available_for_pickup", C.AVAILABLE_FOR_PICKUP),
        ("delivered", C.DELIVERED),
        ("return_to_sender", C.RETURNED_TO_SENDER),
        ("failure", C.EXCEPTION),
        ("error", C.EXCEPTION),
        ("cancelled", C.CANCELLED),
        ("unknown", C.UNKNOWN),
        ("something_new", C.UNKNOWN),
    ],
)
def test_carrier_a_statuses_map_to_milestones(status: str, code: MilestoneCode) -> None:
    report = EasyPostWebhooks(SECRET).read(
        easypost_event((status, "some_detail", "2025-03-14T09:00:00Z"))
    )
    assert report is not None
    [milestone] = report.events
    assert (milestone.code, milestone.raw_status, milestone.raw_detail) == (
        code,
        status,
        "some_detail",
    )
    assert milestone.location == "Utrecht, NL"


def test_carrier_a_history_is_read_oldest_first_in_utc() -> None:
    report = EasyPostWebhooks(SECRET).read(
        easypost_event(
            ("in_transit", None, "2025-03-14T11:00:00+02:00"),
            ("pre_transit", None, "2025-03-14T08:00:00"),  # no offset: taken as UTC
        )
    )
    assert report is not None
    assert report.tracking_number == "EZ1000000042"
    assert [(m.code, m.occurred_at.isoformat()) for m in report.events] == [
        (C.LABEL_CREATED, "2025-03-14T08:00:00+00:00"),
        (C.IN_TRANSIT, "2025-03-14T09:00:00+00:00"),
    ]


def test_carrier_a_events_that_are_not_tracking_are_ignored() -> None:
    assert EasyPostWebhooks(SECRET).read(easypost_event(description="refund.successful")) is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"description": "tracker.updated"}',
        b'{"description": "tracker.updated", "result": {"status": 1}}',
    ],
)
def test_carrier_a_malformed_tracking_events_are_refused(body: bytes) -> None:
    with pytest.raises(BadTrackingPayload):
        EasyPostWebhooks(SECRET).read(body)


# -- carrier B (Shippo style) -----------------------------------------------------------


def test_carrier_b_signature_with_a_fresh_timestamp_is_accepted() -> None:
    body = shippo_track(("PRE_TRANSIT", "information_received", "2025-03-14T09:00:00Z"))
    ShippoWebhooks(SECRET).verify(shippo_signature_headers(SECRET, body), body)


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        (None, "header missing"),
        ("v1=abcd", "timestamp missing"),
        ("t=yesterday,v1=abcd", "not Unix seconds"),
        ("t={old},v1={sig}", "old"),
        ("t={future},v1={sig}", "in the future"),
        ("t={now}", "signature missing"),
        ("t={now},v1={sig_other}", "does not match"),
    ],
)
def test_carrier_b_bad_signatures_and_stale_timestamps_are_refused(
    header: str | None, complaint: str
) -> None:
    body = shippo_track(("TRANSIT", "package_arrived", "2025-03-14T09:00:00Z"))
    now = int(time.time())

    def sig(stamp: int, content: bytes = body) -> str:
        return shippo_signature_headers(SECRET, content, timestamp=stamp)[
            "X-Shippo-Signature"
        ].split("v1=")[1]

    headers = {}
    if header is not None:
        headers["X-Shippo-Signature"] = header.format(
            old=now - 3600,
            future=now + 3600,
            now=now,
            sig=sig(now - 3600) if "{old}" in header else sig(now + 3600),
            sig_other=sig(now, body + b" "),
        )
    with pytest.raises(SignatureError, match=complaint):
        ShippoWebhooks(SECRET, tolerance_s=300).verify(headers, body)


@pytest.mark.parametrize(
    ("status", "substatus", "code"),
    [
        ("PRE_TRANSIT", "information_received", C.LABEL_CREATED),
        ("TRANSIT", "package_arrived", C.IN_TRANSIT),
        ("TRANSIT", "out_for_delivery", C.OUT_FOR_DELIVERY),
        ("TRANSIT", "delivery_attempted", C.DELIVERY_ATTEMPT_FAILED),
        ("TRANSIT", "pickup_available", C.AVAILABLE_FOR_PICKUP),
        ("DELIVERED", "delivered", C.DELIVERED),
        ("RETURNED", "return_to_sender", C.RETURNED_TO_SENDER),
        ("FAILURE", "package_undeliverable", C.EXCEPTION),
        ("UNKNOWN", None, C.UNKNOWN),
        ("SOMETHING_NEW", None, C.UNKNOWN),
    ],
)
def test_carrier_b_statuses_and_substatuses_map_to_milestones(
    status: str, substatus: str | None, code: MilestoneCode
) -> None:
    report = ShippoWebhooks(SECRET).read(shippo_track((status, substatus, "2025-03-14T09:00:00Z")))
    assert report is not None
    [milestone] = report.events
    assert (milestone.code, milestone.raw_status, milestone.raw_detail) == (code, status, substatus)


def test_carrier_b_history_is_read_oldest_first_and_undated_scans_are_skipped() -> None:
    report = ShippoWebhooks(SECRET).read(
        shippo_track(
            ("TRANSIT", "package_arrived", "2025-03-14T10:00:00Z"),
            ("UNKNOWN", None, None),
            ("PRE_TRANSIT", "information_received", "2025-03-14T09:00:00Z"),
        )
    )
    assert report is not None
    assert report.tracking_number == "92055901755477000042"
    assert [m.code for m in report.events] == [C.LABEL_CREATED, C.IN_TRANSIT]
    assert report.events[0].location == "Amsterdam, NL"


def test_carrier_b_events_that_are_not_tracking_are_ignored() -> None:
    body = msgspec.json.encode({"event": "transaction_updated", "data": {"object_id": "x"}})
    assert ShippoWebhooks(SECRET).read(body) is None


@pytest.mark.parametrize(
    "body", [b"{", b'{"event": "track_updated"}', b'{"event": "track_updated", "data": {}}']
)
def test_carrier_b_malformed_tracking_events_are_refused(body: bytes) -> None:
    with pytest.raises(BadTrackingPayload):
        ShippoWebhooks(SECRET).read(body)
