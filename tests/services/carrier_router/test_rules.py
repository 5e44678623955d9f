"""Carrier rules and settings: loading, defaults, and one clear line for every mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from waybill_carrier_router.config import CarrierRouterSettings
from waybill_carrier_router.rules import DEFAULT_RULES, load_rules
from waybill_contracts.model import ServiceLevel
from waybill_runtime.settings import SettingsError, describe_settings, load_settings

KNOWN = ("carrier-a", "carrier-b")
RULES_JSON = (
    '{"carriers": [{"carrier": "carrier-b", "countries": ["NL", "BE"], "max_weight_kg": 20,'
    ' "services": {"standard": ["usps_ground_advantage"]}}]}'
)


def test_empty_rules_setting_means_the_built_in_rules() -> None:
    rules = load_rules("  ", known_carriers=KNOWN)
    assert rules is DEFAULT_RULES
    assert [rule.carrier for rule in rules.carriers] == ["carrier-a", "carrier-b"]
    for rule in rules.carriers:
        assert rule.countries is None  # anywhere
        assert rule.max_weight_kg == 30.0
        assert ServiceLevel.SAME_DAY not in rule.services


def test_rules_are_read_from_json_text() -> None:
    rules = load_rules(RULES_JSON, known_carriers=KNOWN)
    [rule] = rules.carriers
    assert rule.carrier == "carrier-b"
    assert rule.countries == frozenset({"NL", "BE"})
    assert rule.max_weight_kg == 20
    assert rule.services == {ServiceLevel.STANDARD: ("usps_ground_advantage",)}
    assert rules.rule_for("carrier-a") is None


def test_delivery_methods_are_read_with_their_level_and_carriers() -> None:
    source = RULES_JSON[:-1] + (
        ', "delivery_methods": {"Express": {"service_level": "express", '
        '"carriers": ["carrier-b"]}, "Economy": {"service_level": "economy"}}}'
    )
    rules = load_rules(source, known_carriers=KNOWN)
    express = rules.method_rule("EXPRESS ")
    assert express is not None
    assert (express.service_level, express.carriers) == (ServiceLevel.EXPRESS, ("carrier-b",))
    assert rules.method_rule("Pickup") is None
    assert load_rules(RULES_JSON, known_carriers=KNOWN).delivery_methods == {}


@pytest.mark.parametrize(
    ("methods", "complaint"),
    [
        ('{"Express": {"carriers": ["carrier-a"]}}', "'carrier-a', which has no carrier rule"),
        ('{"Express": {}, "express": {}}', "list delivery method 'express' twice"),
        ('{"Express": {"carriers": []}}', "are not valid"),
        ('{"Express": {"level": "express"}}', "unknown field `level`"),
    ],
)
def test_a_delivery_method_rule_that_cannot_work_is_refused_saying_why(
    methods: str, complaint: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        load_rules(RULES_JSON[:-1] + f', "delivery_methods": {methods}}}', known_carriers=KNOWN)


def test_rules_are_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(RULES_JSON)
    assert load_rules(str(path), known_carriers=KNOWN) == load_rules(
        RULES_JSON, known_carriers=KNOWN
    )


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ('{"carriers": [', "are not valid"),
        ('{"carriers": []}', "are not valid"),
        ('{"carrier": []}', "are not valid"),  # a typo of a key is refused, not ignored
        (
            '{"carriers": [{"carrier": "carrier-a", "countrys": ["NL"], "services": {}}]}',
            "unknown field `countrys`",
        ),
        (
            '{"carriers": [{"carrier": "carrier-a", "countries": ["nl"], "services": {}}]}',
            "are not valid",
        ),
        (
            '{"carriers": [{"carrier": "carrier-a", "max_weight_kg": 0, "services": {}}]}',
            "are not valid",
        ),
        (
            '{"carriers": [{"carrier": "carrier-a", "services": {"warp": ["x"]}}]}',
            "are not valid",
        ),
        ('{"carriers": [{"carrier": "dhl", "services": {}}]}', "cannot book with"),
        (
            '{"carriers": [{"carrier": "carrier-a", "services": {}},'
            ' {"carrier": "carrier-a", "services": {}}]}',
            "twice",
        ),
        ("/no/such/rules.json", "cannot read the carrier rules file"),
    ],
)
def test_broken_rules_are_refused_with_what_is_wrong(source: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        load_rules(source, known_carriers=KNOWN)


def test_settings_default_to_the_local_sandboxes() -> None:
    settings = load_settings(CarrierRouterSettings, environ={}, service="carrier-router")
    a, b = settings.accounts()
    assert (a.code, a.url, a.api_key) == ("carrier-a", "http://127.0.0.1:8071", "EZTK-sandbox")
    assert (b.code, b.url, b.api_key) == (
        "carrier-b",
        "http://127.0.0.1:8072",
        "shippo_test_sandbox",
    )
    assert a.enabled and b.enabled
    assert settings.rules() is DEFAULT_RULES


def test_settings_read_carrier_accounts_from_the_environment() -> None:
    settings = load_settings(
        CarrierRouterSettings,
        environ={
            "WAYBILL_SERVICE": "carrier-router",
            "WAYBILL_CARRIER_A_URL": "https://api.carrier-a.example/",
            "WAYBILL_CARRIER_A_ENABLED": "false",
            "WAYBILL_CARRIER_B_API_KEY": "live-key",
            "WAYBILL_CARRIER_RULES": RULES_JSON,
        },
    )
    a, b = settings.accounts()
    assert (a.url, a.enabled) == ("https://api.carrier-a.example", False)
    assert b.api_key == "live-key"
    assert [rule.carrier for rule in settings.rules().carriers] == ["carrier-b"]


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"WAYBILL_CARRIER_RULES": '{"carriers": ['}, "carrier rules are not valid"),
        ({"WAYBILL_CARRIER_A_URL": "ftp://carrier"}, "WAYBILL_CARRIER_A_URL"),
        ({"WAYBILL_BOOKING_MAX_ATTEMPTS": "9", "WAYBILL_MAX_DELIVER": "4"}, "must not exceed"),
        ({"WAYBILL_LABEL_FORMAT": "GIF"}, "WAYBILL_LABEL_FORMAT"),
        ({"WAYBILL_SHIP_FROM_COUNTRY": "Netherlands"}, "two-letter country code"),
    ],
)
def test_bad_settings_stop_the_service_with_one_line(
    environ: dict[str, str], complaint: str
) -> None:
    with pytest.raises(SettingsError, match=complaint):
        load_settings(
            CarrierRouterSettings, environ={"WAYBILL_SERVICE": "carrier-router", **environ}
        )


def test_every_setting_is_described_for_the_readme() -> None:
    described = {info.env_var: info for info in describe_settings(CarrierRouterSettings)}
    for name in ("A", "B"):
        for field in ("URL", "API_KEY", "WEBHOOK_SECRET", "ENABLED"):
            assert described[f"WAYBILL_CARRIER_{name}_{field}"].description
    assert described["WAYBILL_CARRIER_RULES"].expected == "a JSON object, a file path, or empty"
