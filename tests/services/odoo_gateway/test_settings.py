"""The gateway's settings: local-stack defaults, and one clear line for each bad value."""

from __future__ import annotations

import pytest

from waybill_odoo_gateway.config import OdooGatewaySettings
from waybill_runtime.settings import SettingsError, describe_settings, load_settings


def load(**env: str) -> OdooGatewaySettings:
    return load_settings(OdooGatewaySettings, {"WAYBILL_SERVICE": "odoo-gateway", **env})


def test_defaults_reach_the_local_odoo_sandbox_with_its_demo_users() -> None:
    settings = load()
    assert (settings.odoo_url, settings.odoo_db, settings.odoo_protocol) == (
        "http://127.0.0.1:8069",
        "waybill",
        "auto",
    )
    assert (settings.odoo_login, settings.odoo_secret, settings.odoo_ops_login) == (
        "admin",
        "admin",
        "ops",
    )
    assert (settings.odoo_max_in_flight, settings.odoo_slow_call_s) == (16, 10.0)
    assert settings.odoo_poll_interval_s == 30.0
    assert settings.odoo_timeout_s > 30.0
    assert settings.odoo_webhook_token is None
    # Commands wait out an Odoo outage of hours before they are dead-lettered.
    assert settings.max_deliver == 30


def test_api_key_is_preferred_over_the_password() -> None:
    assert load(WAYBILL_ODOO_API_KEY="k" * 40).odoo_secret == "k" * 40


def test_environment_variables_are_read() -> None:
    settings = load(
        WAYBILL_ODOO_PROTOCOL="json2",
        WAYBILL_ODOO_API_KEY="k" * 40,
        WAYBILL_ODOO_VERSION="19",
        WAYBILL_ODOO_MAX_IN_FLIGHT="2",
        WAYBILL_ODOO_WEBHOOK_NETWORKS="10.0.0.0/8, 192.168.1.5",
        WAYBILL_ODOO_CARRIER_NAMES='{"dhl": "DHL Express"}',
    )
    assert (settings.odoo_protocol, settings.odoo_version, settings.odoo_max_in_flight) == (
        "json2",
        19,
        2,
    )
    assert [str(n) for n in settings.allowed_networks] == ["10.0.0.0/8", "192.168.1.5/32"]
    assert settings.odoo_carrier_names == {"dhl": "DHL Express"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WAYBILL_ODOO_PROTOCOL": "json2"},
            "WAYBILL_ODOO_PROTOCOL=json2 needs WAYBILL_ODOO_API_KEY",
        ),
        (
            {
                "WAYBILL_ODOO_PROTOCOL": "json2",
                "WAYBILL_ODOO_API_KEY": "k",
                "WAYBILL_ODOO_VERSION": "17",
            },
            "WAYBILL_ODOO_VERSION=17 has no JSON-2 API (Odoo 19+): set WAYBILL_ODOO_PROTOCOL",
        ),
        (
            {"WAYBILL_ODOO_PASSWORD": ""},
            "WAYBILL_ODOO_PROTOCOL=auto needs WAYBILL_ODOO_PASSWORD or WAYBILL_ODOO_API_KEY",
        ),
        (
            {"WAYBILL_ODOO_WEBHOOK_NETWORKS": "10.0.0.0/8,office"},
            "WAYBILL_ODOO_WEBHOOK_NETWORKS has 'office', which is not a network",
        ),
        (
            {"WAYBILL_ODOO_WEBHOOK_TOKEN": "short"},
            "WAYBILL_ODOO_WEBHOOK_TOKEN=*** is not valid: expected a random text of at least",
        ),
        (
            {"WAYBILL_ODOO_VERSION": "15"},
            "WAYBILL_ODOO_VERSION='15' is not valid",
        ),
        (
            {"WAYBILL_ODOO_PROTOCOL": "xmlrpc"},
            "WAYBILL_ODOO_PROTOCOL='xmlrpc' is not valid: expected one of auto, json2, jsonrpc",
        ),
        (
            {"WAYBILL_ODOO_URL": "odoo.example.com"},
            "WAYBILL_ODOO_URL='odoo.example.com' is not valid: expected an http(s) URL",
        ),
    ],
)
def test_bad_setting_is_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as bad:
        load(**env)
    assert message in str(bad.value)
    assert "\n" not in str(bad.value)


def test_every_odoo_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[3] / "services/odoo-gateway/README.md").read_text()
    odoo_vars = [s.env_var for s in describe_settings(OdooGatewaySettings) if "ODOO" in s.env_var]
    assert len(odoo_vars) > 15
    assert [var for var in odoo_vars if f"`{var}`" not in readme] == []
