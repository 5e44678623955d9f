"""Composing customer emails: headers that identify them, and addresses that cannot be used."""

from __future__ import annotations

from email.message import EmailMessage

import msgspec
import pytest

from tests.services.notifier.harness import shipment_booked
from waybill_notifier.attempts import Undeliverable
from waybill_notifier.config import NotifierSettings
from waybill_notifier.mailer import Mailer, message_id_for
from waybill_notifier.notifications import from_shipment_booked
from waybill_notifier.order_book import CustomerContact
from waybill_notifier.rendering import render_email
from waybill_runtime.settings import load_settings

REF = "WH/OUT/00900"
NOTIFICATION = from_shipment_booked(shipment_booked(REF))
CONTACT = CustomerContact(order_ref=REF, order_label=REF, name="Marie Jansen", email="m@x.test")


def mailer(mail_from: str = "Acme <ship@acme.test>") -> Mailer:
    return Mailer(
        load_settings(NotifierSettings, environ={}, service="notifier", mail_from=mail_from)
    )


def compose(contact: CustomerContact) -> EmailMessage:
    return mailer().compose(NOTIFICATION, contact, render_email(NOTIFICATION, contact))


def test_an_email_carries_a_message_id_made_from_the_notification_id() -> None:
    first, again = compose(CONTACT), compose(CONTACT)
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] == f"<{NOTIFICATION.notification_id}@acme.test>"
    assert first["X-Waybill-Notification-Kind"] == "shipped"
    assert first["X-Waybill-Order-Ref"] == REF
    assert first["Auto-Submitted"] == "auto-generated"
    assert [part.get_content_type() for part in first.iter_parts()] == [
        "text/plain",
        "text/html",
    ]


def test_the_message_id_domain_comes_from_the_sender_address() -> None:
    assert message_id_for("msg_1", "Shop <noreply@shop.example>") == "<msg_1@shop.example>"


@pytest.mark.parametrize(
    "address", [None, "not-an-address", "a@b.test, c@d.test", "m@x.test\nBcc: spy@evil.test"]
)
def test_an_unusable_customer_address_is_undeliverable_without_repeating_it(
    address: str | None,
) -> None:
    contact = msgspec.structs.replace(CONTACT, email=address)
    with pytest.raises(Undeliverable) as refused:
        compose(contact)
    assert REF in str(refused.value)
    assert "c@d.test" not in str(refused.value) and "spy@evil.test" not in str(refused.value)


def test_a_name_with_a_line_break_stays_on_one_header_line() -> None:
    contact = msgspec.structs.replace(CONTACT, name="Marie\r\nBcc: spy@evil.test")
    message = compose(contact)
    assert "\n" not in str(message["To"])
    assert message["Bcc"] is None
