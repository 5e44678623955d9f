"""The notifier's settings: local-stack defaults, and clear errors for unusable values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from waybill_notifier.config import NotifierSettings
from waybill_runtime.settings import SettingsError, load_settings


def load(environ: dict[str, str]) -> NotifierSettings:
    return load_settings(NotifierSettings, environ={"WAYBILL_SERVICE": "notifier", **environ})


def test_defaults_fit_the_local_mail_sandbox() -> None:
    settings = load({})
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == (
        "127.0.0.1",
        8025,
        False,
    )
    assert settings.webhook_subscriptions == "[]"
    # Notifications wait longer for their providers than the runtime's default.
    assert settings.max_deliver > 8


def test_every_smtp_setting_is_read_from_its_variable() -> None:
    settings = load(
        {
            "WAYBILL_SMTP_HOST": "smtp.acme.test",
            "WAYBILL_SMTP_PORT": "587",
            "WAYBILL_SMTP_USERNAME": "ship",
            "WAYBILL_SMTP_PASSWORD": "s3cret",
            "WAYBILL_SMTP_STARTTLS": "true",
            "WAYBILL_MAIL_FROM": "Acme <ship@acme.test>",
            "WAYBILL_TRACKING_URL_TEMPLATES": '{"dhl": "https://dhl.test/{tracking_number}"}',
        }
    )
    assert (settings.smtp_host, settings.smtp_port) == ("smtp.acme.test", 587)
    assert (settings.smtp_username, settings.smtp_password) == ("ship", "s3cret")
    assert settings.smtp_starttls is True
    assert settings.mail_from == "Acme <ship@acme.test>"
    assert settings.tracking_url_templates == {"dhl": "https://dhl.test/{tracking_number}"}


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"WAYBILL_MAIL_FROM": "Acme Shipping"}, "holds no email address"),
        ({"WAYBILL_SMTP_USERNAME": "ship"}, "both WAYBILL_SMTP_USERNAME and WAYBILL_SMTP_PASSWORD"),
        ({"WAYBILL_SMTP_PORT": "0"}, "WAYBILL_SMTP_PORT"),
        ({"WAYBILL_SMTP_STARTTLS": "perhaps"}, "WAYBILL_SMTP_STARTTLS"),
        ({"WAYBILL_TRACKING_URL_TEMPLATES": '{"dhl": "https://dhl.test/"}'}, "tracking_number"),
    ],
)
def test_unusable_values_are_refused_with_what_to_fix(
    environ: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(SettingsError, match=complaint):
        load(environ)


def test_every_signing_secret_and_the_smtp_password_are_known_to_the_log_redaction(
    tmp_path: Path,
) -> None:
    mounted = tmp_path / "subscriptions.json"
    mounted.write_text('[{"url": "https://b.example/hook", "secret": "whsec_from_file"}]')
    settings = load(
        {
            "WAYBILL_SMTP_USERNAME": "relay-user",
            "WAYBILL_SMTP_PASSWORD": "relay-password",
            "WAYBILL_WEBHOOK_SUBSCRIPTIONS": '[{"url": "https://a.example/hook", '
            '"secret": "whsec_inline"}]',
            "WAYBILL_WEBHOOK_SUBSCRIPTIONS_FILE": str(mounted),
        }
    )
    secrets = settings.secret_values()
    assert {"relay-password", "whsec_inline", "whsec_from_file"} <= set(secrets)
    assert "relay-user" not in secrets
    shown = repr(settings)
    assert "relay-password" not in shown and "whsec_inline" not in shown
