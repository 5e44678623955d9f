"""Webhook subscriptions: from the settings and a file, matched per channel, customer, event."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from waybill_notifier.config import NotifierSettings
from waybill_notifier.notifications import NotificationKind
from waybill_notifier.subscriptions import load_subscriptions
from waybill_runtime.settings import SettingsError, load_settings

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


def settings(entries: Any = (), **more: Any) -> NotifierSettings:
    text = entries if isinstance(entries, str) else json.dumps(list(entries))
    return load_settings(
        NotifierSettings, environ={}, service="notifier", webhook_subscriptions=text, **more
    )


def urls(
    entries: list[dict[str, Any]], kind: NotificationKind, channel: str | None, partner: int | None
) -> list[str]:
    subscriptions = load_subscriptions(settings(entries))
    return [e.url for e in subscriptions.endpoints_for(kind, channel, partner)]


def test_no_subscriptions_by_default() -> None:
    assert load_subscriptions(settings()).entries == ()


def test_an_entry_without_filters_wants_everything() -> None:
    entries = [{"url": "https://a.test/hook", "secret": SECRET}]
    for kind in NotificationKind:
        assert urls(entries, kind, None, None) == ["https://a.test/hook"]


def test_channels_partners_and_events_all_have_to_match() -> None:
    entries: list[dict[str, Any]] = [
        {
            "url": "https://a.test/hook",
            "secret": SECRET,
            "channels": ["web"],
            "partner_ids": [7],
            "events": ["shipment.delivered"],
        }
    ]
    assert urls(entries, NotificationKind.DELIVERED, "web", 7) == ["https://a.test/hook"]
    assert urls(entries, NotificationKind.SHIPPED, "web", 7) == []
    assert urls(entries, NotificationKind.DELIVERED, "marketplace", 7) == []
    assert urls(entries, NotificationKind.DELIVERED, "web", 8) == []
    assert urls(entries, NotificationKind.DELIVERED, None, None) == []


def test_an_endpoint_listed_twice_gets_a_notification_once() -> None:
    entries: list[dict[str, Any]] = [
        {"url": "https://a.test/hook", "secret": SECRET, "channels": ["web"]},
        {"url": "https://a.test/hook", "secret": SECRET, "partner_ids": [7]},
        {"url": "https://b.test/hook", "secret": SECRET},
    ]
    assert urls(entries, NotificationKind.SHIPPED, "web", 7) == [
        "https://a.test/hook",
        "https://b.test/hook",
    ]


def test_endpoints_are_labelled_by_name_or_by_url_without_its_query() -> None:
    entries = [
        {"url": "https://a.test/hook?token=secret", "secret": SECRET},
        {"url": "https://b.test/hook", "secret": SECRET, "name": "partner-b"},
    ]
    found = load_subscriptions(settings(entries)).endpoints_for(
        NotificationKind.SHIPPED, None, None
    )
    assert [e.label for e in found] == ["https://a.test/hook", "partner-b"]
    assert found[0].key != found[1].key


def test_subscriptions_from_a_file_add_to_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.json"
    path.write_text(json.dumps([{"url": "https://file.test/hook", "secret": SECRET}]))
    loaded = load_subscriptions(
        settings(
            [{"url": "https://env.test/hook", "secret": SECRET}],
            webhook_subscriptions_file=str(path),
        )
    )
    assert [e.url for e in loaded.entries] == ["https://env.test/hook", "https://file.test/hook"]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("not json", "WAYBILL_WEBHOOK_SUBSCRIPTIONS is not valid"),
        ('{"url": "x"}', "expected a JSON list"),
        (json.dumps([{"url": "ftp://a.test/", "secret": SECRET}]), "absolute http"),
        (json.dumps([{"url": "https://a.test/", "secret": "plain"}]), "whsec_"),
        (
            json.dumps([{"url": "https://a.test/", "secret": SECRET, "events": ["x"]}]),
            "unknown webhook event",
        ),
        (json.dumps([{"url": "https://a.test/", "secret": SECRET, "chanels": ["web"]}]), "chanels"),
        (json.dumps([{"secret": SECRET}]), "url"),
    ],
)
def test_bad_subscriptions_stop_the_start_with_a_clear_error(text: str, complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint) as caught:
        load_subscriptions(settings(text))
    assert SECRET not in str(caught.value)


def test_a_subscriptions_file_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"
    path.write_text("[{")
    with pytest.raises(SettingsError, match=r"hooks\.json"):
        load_subscriptions(settings(webhook_subscriptions_file=str(path)))


def test_a_subscriptions_file_that_vanished_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"
    path.write_text("[]")
    loaded = settings(webhook_subscriptions_file=str(path))
    path.unlink()
    with pytest.raises(SettingsError, match="cannot be read"):
        load_subscriptions(loaded)
