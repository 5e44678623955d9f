"""Personal data masked in bodies the API shows; logistics data left readable."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from tests.services.auditor.journey import for_order
from waybill_auditor.masking import mask_personal_data, mask_unreadable_text
from waybill_contracts.commands import BookShipment
from waybill_contracts.events import NotificationSent, ShipmentBooked
from waybill_runtime.personal_data import hash_email


def as_json(message: msgspec.Struct) -> Any:
    return msgspec.json.decode(msgspec.json.encode(message))


def test_the_recipient_and_address_of_a_booking_are_masked() -> None:
    body = as_json(for_order(BookShipment, "WH/OUT/1"))
    sent = copy.deepcopy(body)

    masked = mask_personal_data(body)

    recipient, ship_to = masked["recipient"], masked["ship_to"]
    assert recipient["name"] != sent["recipient"]["name"] and recipient["name"].endswith("***")
    assert recipient["email"] == hash_email(sent["recipient"]["email"])
    assert ship_to["name"] != sent["ship_to"]["name"]
    assert ship_to["street"] == "***"
    assert ship_to["postal_code"] == "***"
    assert (ship_to["city"], ship_to["country_code"]) == (
        sent["ship_to"]["city"],
        sent["ship_to"]["country_code"],
    )
    assert masked["parcels"] == sent["parcels"]  # weights and parcel ids stay readable
    assert body == sent  # the input is not changed


def test_a_notification_recipient_address_is_masked_wherever_it_appears() -> None:
    body = as_json(for_order(NotificationSent, "WH/OUT/1"))

    masked = mask_personal_data(body)

    assert masked["recipient"] == hash_email(body["recipient"])
    assert masked["order_ref"] == "WH/OUT/1"


def test_emails_and_phone_numbers_in_free_text_are_masked() -> None:
    masked = mask_personal_data({"detail": "call +44 20 7946 0958 or mail jane.doe@example.com"})

    assert masked == {"detail": f"call ***58 or mail {hash_email('jane.doe@example.com')}"}


def test_shipment_data_is_not_personal() -> None:
    body = as_json(for_order(ShipmentBooked, "WH/OUT/1"))

    assert mask_personal_data(body) == body


def test_values_that_are_not_text_pass_through() -> None:
    assert mask_personal_data([1, 2.5, None, True, {"n": 3}]) == [1, 2.5, None, True, {"n": 3}]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            '{"customer": {"name": "Jane Doe", "email": "jane.doe@example.com", "phone": "+44 2',
            '{"customer": {"name": "J*** D***", "email": "'
            + hash_email("jane.doe@example.com")
            + '", "phone": "***',
        ),
        ('{"ship_to": {"street": "12 Baker Street", "postal_code": "NW1 6XE", "city": "London"',
         '{"ship_to": {"street": "***", "postal_code": "***", "city": "London"'),
        ('{"street": "12 Baker Str', '{"street": "***'),
        ('{"name": "Jane \\"JD\\" Doe"}', '{"name": "J*** \\*** D***"}'),
        ("not json at all: call +44 20 7946 0958", "not json at all: call ***58"),
        ('{"sku": "WB-0001", "qty": 2}', '{"sku": "WB-0001", "qty": 2}'),
    ],
)  # fmt: skip
def test_a_body_that_is_not_json_is_masked_as_text_and_as_json_cut_short(
    text: str, masked: str
) -> None:
    assert mask_unreadable_text(text) == masked
