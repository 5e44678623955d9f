"""Emails from templates: every kind in every language, escaped, with optional lines left out."""

from __future__ import annotations

from datetime import UTC, datetime
from string import Template
from typing import Any

import msgspec
import pytest

from tests.services.notifier.harness import milestone, shipment_booked
from waybill_contracts.model import MilestoneCode
from waybill_notifier import rendering
from waybill_notifier.notifications import (
    Notification,
    NotificationKind,
    from_milestone,
    from_shipment_booked,
    notification_id,
)
from waybill_notifier.order_book import CustomerContact
from waybill_notifier.rendering import language_candidates, render_email

REF = "WH/OUT/00700"
CONTACT = CustomerContact(
    order_ref=REF, order_label="S00700", name="Marie Jansen", email="m@x.test"
)


def notification_of(kind: NotificationKind, **changes: object) -> Notification:
    found: Notification | None
    if kind is NotificationKind.SHIPPED:
        found = from_shipment_booked(shipment_booked(REF))
    else:
        found = from_milestone(
            milestone(REF, MilestoneCode(kind.value), location="Depot 4", description="Late truck")
        )
    assert found is not None
    return msgspec.structs.replace(found, **changes)


RETURN_KINDS = (
    NotificationKind.RETURN_LABEL,
    NotificationKind.RETURN_REMINDER,
    NotificationKind.RETURN_CREDITED,
)
SHIPMENT_KINDS = [kind for kind in NotificationKind if kind not in RETURN_KINDS]
LOCALES = [None, "en_US", "nl_NL", "de_DE", "fr_FR", "pt_BR"]


@pytest.mark.parametrize("kind", RETURN_KINDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_return_kind_renders_text_and_html_in_every_language(
    kind: NotificationKind, locale: str | None
) -> None:
    notification = Notification(
        notification_id=notification_id(REF, kind, "ret-1"),
        kind=kind,
        order_ref=REF,
        shipment_id="ret-1",
        carrier="carrier-b",
        tracking_number="RT-700",
        label_url="https://labels.test/ret-1.pdf",
        credit_note="RINV/2026/00001",
        credited="12.50 EUR",
        occurred_at=datetime(2026, 12, 6, tzinfo=UTC),
    )
    email = render_email(notification, msgspec.structs.replace(CONTACT, locale=locale))
    for part in (email.subject, email.text, email.html):
        assert "S00700" in part
        assert "$" not in part
    wanted = "12.50 EUR" if kind is NotificationKind.RETURN_CREDITED else "https://labels.test/"
    assert wanted in email.text and wanted in email.html


@pytest.mark.parametrize("kind", SHIPMENT_KINDS)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_kind_renders_text_and_html_in_every_language(
    kind: NotificationKind, locale: str | None
) -> None:
    email = render_email(
        notification_of(kind, tracking_url="https://t.test/1"),
        msgspec.structs.replace(CONTACT, locale=locale),
    )
    for part in (email.subject, email.text, email.html):
        assert "S00700" in part
        assert "$" not in part
    assert "TNWHOUT00700" in email.text and "TNWHOUT00700" in email.html
    assert "https://t.test/1" in email.text
    assert email.html.startswith("<!DOCTYPE html>")


def test_subjects_follow_the_customer_language_with_english_as_fallback() -> None:
    shipped = notification_of(NotificationKind.SHIPPED)
    subject = {
        locale: render_email(shipped, msgspec.structs.replace(CONTACT, locale=locale)).subject
        for locale in ("nl_NL", "de-DE", "fr", "pt_BR", None)
    }
    assert subject == {
        "nl_NL": "Je bestelling S00700 is verzonden",
        "de-DE": "Ihre Bestellung S00700 wurde versandt",
        "fr": "Votre commande S00700 a été expédiée",
        "pt_BR": "Your order S00700 has shipped",
        None: "Your order S00700 has shipped",
    }


def test_language_candidates_go_from_specific_to_english() -> None:
    assert language_candidates("nl_NL") == ["nl_NL", "nl", "en"]
    assert language_candidates("en") == ["en"]
    assert language_candidates(None) == ["en"]


def test_customer_data_is_escaped_in_html_and_kept_in_text() -> None:
    contact = msgspec.structs.replace(CONTACT, name='<script>alert("x")</script> & Co')
    email = render_email(notification_of(NotificationKind.SHIPPED), contact)
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in email.html
    assert '<script>alert("x")</script> & Co' in email.text


def test_optional_lines_are_left_out_when_there_is_nothing_to_say() -> None:
    told = notification_of(NotificationKind.EXCEPTION).milestone
    assert told is not None
    bare = notification_of(
        NotificationKind.EXCEPTION,
        tracking_url=None,
        milestone=msgspec.structs.replace(told, location=None, description=None),
    )
    email = render_email(bare, CONTACT)
    assert "Follow your parcel" not in email.text and "Track your parcel" not in email.html
    assert "Last seen" not in email.text and "Last seen" not in email.html
    assert "The carrier says" not in email.text
    full = render_email(
        notification_of(NotificationKind.EXCEPTION, tracking_url="https://t.test/"), CONTACT
    )
    assert "Last seen: Depot 4" in full.text and "The carrier says: Late truck" in full.text


def test_only_web_pages_become_tracking_links() -> None:
    email = render_email(
        notification_of(NotificationKind.SHIPPED, tracking_url="javascript:alert(1)"), CONTACT
    )
    assert "javascript:" not in email.html and "javascript:" not in email.text


def test_times_are_shown_in_utc() -> None:
    delivered = notification_of(
        NotificationKind.DELIVERED,
        occurred_at=datetime(2025, 3, 15, 11, 5, tzinfo=UTC),
    )
    assert "2025-03-15 11:05 UTC" in render_email(delivered, CONTACT).text


def test_notification_ids_are_stable_and_differ_per_order_kind_and_shipment() -> None:
    first = notification_id(REF, NotificationKind.SHIPPED, "shp-1")
    assert first == notification_id(REF, NotificationKind.SHIPPED, "shp-1")
    others = {
        notification_id("WH/OUT/00701", NotificationKind.SHIPPED, "shp-1"),
        notification_id(REF, NotificationKind.DELIVERED, "shp-1"),
        notification_id(REF, NotificationKind.SHIPPED, "shp-2"),
    }
    assert first not in others and len(others) == 3
    assert first.startswith("msg_") and "." not in first


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (MilestoneCode.OUT_FOR_DELIVERY, NotificationKind.OUT_FOR_DELIVERY),
        (MilestoneCode.DELIVERED, NotificationKind.DELIVERED),
        (MilestoneCode.EXCEPTION, NotificationKind.EXCEPTION),
        (MilestoneCode.IN_TRANSIT, None),
        (MilestoneCode.DELIVERY_ATTEMPT_FAILED, None),
        (MilestoneCode.RETURNED_TO_SENDER, None),
    ],
)
def test_milestones_map_to_notifications_or_to_nothing(
    code: MilestoneCode, kind: NotificationKind | None
) -> None:
    found = from_milestone(milestone(REF, code))
    assert (found.kind if found else None) is kind


def test_templates_fill_as_string_template_would_without_calling_back_per_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = {"name": "{Marie} $ Jansen", "other": "<b>{0}</b>"}
    for text in ("a {b} $name $$ ${other}x {{}}", "$name", "", "{}$$$other"):
        assert rendering._format_string(Template(text)).format_map(values) == Template(
            text
        ).substitute(values)
    with pytest.raises(ValueError, match="invalid placeholder"):
        rendering._format_string(Template("costs $5"))
    # Every template file, every language: the same text as Template.substitute gives.
    for folder in rendering._TEMPLATES.iterdir():
        for file in folder.iterdir() if folder.is_dir() else ():
            template = Template(file.read_text(encoding="utf-8"))
            names = {
                m.group("named") or m.group("braced")
                for m in template.pattern.finditer(template.template)
            } - {None}
            filled = {str(name): f"<{name}> {{x}} $y" for name in names}
            assert rendering._format_string(template).format_map(filled) == template.substitute(
                filled
            ), file
    substituted: list[str] = []
    substitute = Template.substitute

    def counted(template: Template, *args: Any, **kwargs: Any) -> str:
        substituted.append(template.template)
        return substitute(template, *args, **kwargs)

    monkeypatch.setattr(Template, "substitute", counted)
    tracked = notification_of(NotificationKind.DELIVERED, tracking_url="https://t.example/1")
    for _ in range(3):
        render_email(tracked, CONTACT)
    # Three emails: no substitute (30 before, ten each: the subject, both bodies, the
    # layout and the tracking, location and note lines in text and HTML).
    assert substituted == []
