"""Settings come from WAYBILL_* / NATS_URL variables; bad values stop the service clearly."""

from __future__ import annotations

import enum
import logging
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest

from waybill_runtime.errors import UserFacingError
from waybill_runtime.settings import (
    SECRET,
    RuntimeSettings,
    ServiceName,
    SettingsError,
    describe_settings,
    env_var_name,
    known_secrets,
    load_settings,
    refuse_known_secrets,
    settings_dump,
    unknown_settings,
    well_known_secrets,
)

BASE = {"WAYBILL_SERVICE": "carrier-router"}


class LabelFormat(enum.Enum):
    PDF = "pdf"
    ZPL = "zpl"


class CarrierRouterSettings(RuntimeSettings, frozen=True, kw_only=True):
    service: ServiceName = "carrier-router"
    carriers: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)] = ("carrier-a",)
    label_format: LabelFormat = LabelFormat.PDF
    insure_parcels: bool = False
    mode: Literal["live", "sandbox"] = "sandbox"
    api_key: str | None = None


class PricingSettings(RuntimeSettings, frozen=True, kw_only=True):
    max_price: Annotated[float, msgspec.Meta(gt=0)]
    min_price: float = 0.0

    def __post_init__(self) -> None:
        if self.min_price > self.max_price:
            raise ValueError("min_price must not exceed max_price")


def error_for(cls: type[RuntimeSettings], env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(cls, env)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_apply_when_only_the_service_is_set() -> None:
    settings = load_settings(RuntimeSettings, BASE)
    assert settings.service == "carrier-router"
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.http_port == 8080
    assert settings.retry_backoff_s == (1.0, 5.0, 30.0, 120.0, 600.0)
    assert settings.nats_credentials_file is None


def test_values_are_read_from_waybill_variables_and_nats_url() -> None:
    settings = load_settings(
        RuntimeSettings,
        {
            **BASE,
            "NATS_URL": "nats://nats.prod:4222",
            "WAYBILL_HTTP_PORT": "0",
            "WAYBILL_SHUTDOWN_DEADLINE_S": "12.5",
            "WAYBILL_RETRY_BACKOFF_S": "2, 10 ,60",
            "WAYBILL_LOG_LEVEL": "debug",
            "WAYBILL_SUBJECT_PREFIX": "acme.staging",
        },
    )
    assert settings.nats_url == "nats://nats.prod:4222"
    assert settings.http_port == 0
    assert settings.shutdown_deadline_s == 12.5
    assert settings.retry_backoff_s == (2.0, 10.0, 60.0)
    assert settings.log_level == "DEBUG"
    assert settings.subject_prefix == "acme.staging"


def test_env_var_names_follow_the_rule() -> None:
    assert env_var_name("http_port") == "WAYBILL_HTTP_PORT"
    assert env_var_name("nats_url") == "NATS_URL"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("YES", True),
        ("1", True),
        ("on", True),
        ("false", False),
        ("no", False),
        ("0", False),
    ],
)
def test_booleans_accept_the_usual_spellings(text: str, expected: bool) -> None:
    settings = load_settings(CarrierRouterSettings, {"WAYBILL_INSURE_PARCELS": text})
    assert settings.insure_parcels is expected


def test_service_settings_read_their_own_fields_by_the_same_rule() -> None:
    settings = load_settings(
        CarrierRouterSettings,
        {
            "WAYBILL_CARRIERS": "carrier-a,carrier-b",
            "WAYBILL_LABEL_FORMAT": "ZPL",
            "WAYBILL_MODE": "live",
            "WAYBILL_API_KEY": "k-123",
        },
    )
    assert settings.service == "carrier-router"
    assert settings.carriers == ("carrier-a", "carrier-b")
    assert settings.label_format is LabelFormat.ZPL
    assert settings.mode == "live"
    assert settings.api_key == "k-123"


def test_an_empty_optional_variable_means_none() -> None:
    assert load_settings(CarrierRouterSettings, {"WAYBILL_API_KEY": ""}).api_key is None


def test_an_empty_variable_counts_as_unset() -> None:
    assert load_settings(RuntimeSettings, {**BASE, "WAYBILL_HTTP_PORT": " "}).http_port == 8080


def test_missing_service_names_the_variable() -> None:
    message = error_for(RuntimeSettings, {})
    assert message.startswith("WAYBILL_SERVICE is required: set it to a service name")


def test_missing_service_specific_setting_names_its_variable() -> None:
    message = error_for(PricingSettings, BASE)
    assert message == "WAYBILL_MAX_PRICE is required: set it to a number > 0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WAYBILL_HTTP_PORT": "abc"},
            "WAYBILL_HTTP_PORT='abc' is not valid: expected an integer between 0 and 65535",
        ),
        (
            {"WAYBILL_HTTP_PORT": "70000"},
            "WAYBILL_HTTP_PORT='70000' is not valid: expected an integer between 0 and 65535",
        ),
        (
            {"WAYBILL_CONSUMER_CONCURRENCY": "0"},
            "WAYBILL_CONSUMER_CONCURRENCY='0' is not valid: "
            "expected an integer between 1 and 10000",
        ),
        (
            {"WAYBILL_SHUTDOWN_DEADLINE_S": "nan"},
            "WAYBILL_SHUTDOWN_DEADLINE_S='nan' is not valid: expected a number > 0",
        ),
        (
            {"WAYBILL_RETRY_BACKOFF_S": "1,soon"},
            "WAYBILL_RETRY_BACKOFF_S='1,soon' is not valid: expected a comma-separated list "
            "(at least 1), each a number >= 0",
        ),
        (
            {"WAYBILL_RETRY_BACKOFF_S": "1,-5"},
            "WAYBILL_RETRY_BACKOFF_S='1,-5' is not valid: expected a comma-separated list "
            "(at least 1), each a number >= 0",
        ),
        (
            {"WAYBILL_LOG_LEVEL": "loud"},
            "WAYBILL_LOG_LEVEL='loud' is not valid: expected one of CRITICAL, DEBUG, ERROR, "
            "INFO, WARNING",
        ),
        (
            {"NATS_URL": "localhost:4222"},
            "NATS_URL='localhost:4222' is not valid: expected a NATS URL such as "
            "nats://127.0.0.1:4222",
        ),
        (
            {"WAYBILL_SUBJECT_PREFIX": "waybill.>"},
            "WAYBILL_SUBJECT_PREFIX='waybill.>' is not valid: expected NATS subject tokens "
            "such as waybill or acme.staging",
        ),
        (
            {"WAYBILL_STREAM_REPLICAS": "7"},
            "WAYBILL_STREAM_REPLICAS='7' is not valid: expected an integer between 1 and 5",
        ),
        (
            {"WAYBILL_FETCH_GATHER_S": "-0.1"},
            "WAYBILL_FETCH_GATHER_S='-0.1' is not valid: expected a number between 0 and 5",
        ),
        (
            {"WAYBILL_DUPLICATE_WINDOW_S": "60"},
            "WAYBILL_DUPLICATE_WINDOW_S='60' is not valid: expected a number between 120 and 86400",
        ),
        (
            {"WAYBILL_SERVICE": "Carrier Router"},
            "WAYBILL_SERVICE='Carrier Router' is not valid: expected a service name such as "
            "order-desk (a-z, 0-9, - and _)",
        ),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "",
)
def test_bad_values_name_the_variable_and_what_it_expects(
    env: dict[str, str], message: str
) -> None:
    assert error_for(RuntimeSettings, {**BASE, **env}) == message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WAYBILL_INSURE_PARCELS": "maybe"}, "expected true or false"),
        ({"WAYBILL_LABEL_FORMAT": "png"}, "expected one of pdf, zpl"),
        ({"WAYBILL_MODE": "test"}, "expected one of live, sandbox"),
        ({"WAYBILL_CARRIERS": ","}, "expected a comma-separated list (at least 1), each a text"),
    ],
)
def test_bad_service_specific_values_are_explained(env: dict[str, str], expected: str) -> None:
    message = error_for(CarrierRouterSettings, env)
    assert message.startswith(f"{next(iter(env))}=")
    assert message.endswith(expected)


def test_a_missing_credentials_file_stops_the_service(tmp_path: Path) -> None:
    missing = tmp_path / "carrier-router.creds"
    message = error_for(RuntimeSettings, {**BASE, "WAYBILL_NATS_CREDENTIALS_FILE": str(missing)})
    assert message.startswith(f"WAYBILL_NATS_CREDENTIALS_FILE='{missing}' is not valid: no such")


def test_an_existing_credentials_file_is_accepted(tmp_path: Path) -> None:
    creds = tmp_path / "carrier-router.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    settings = load_settings(RuntimeSettings, {**BASE, "WAYBILL_NATS_CREDENTIALS_FILE": str(creds)})
    assert settings.nats_credentials_file == str(creds)


def test_checks_across_fields_are_reported_as_one_line() -> None:
    message = error_for(
        PricingSettings, {**BASE, "WAYBILL_MAX_PRICE": "10", "WAYBILL_MIN_PRICE": "20"}
    )
    assert message == "settings are not valid: min_price must not exceed max_price"


def test_settings_error_is_a_user_facing_error() -> None:
    assert issubclass(SettingsError, UserFacingError)


def test_overrides_win_over_the_environment() -> None:
    settings = load_settings(
        RuntimeSettings, {**BASE, "WAYBILL_HTTP_PORT": "9000"}, http_port=0, service="notifier"
    )
    assert (settings.http_port, settings.service) == (0, "notifier")


def test_string_overrides_are_read_like_environment_values() -> None:
    settings = load_settings(RuntimeSettings, BASE, retry_backoff_s="3,9", max_deliver="4")
    assert settings.retry_backoff_s == (3.0, 9.0)
    assert settings.max_deliver == 4


def test_a_bad_override_is_named_by_its_field() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(RuntimeSettings, BASE, http_port=-1)
    assert str(caught.value) == "http_port=-1 is not valid: expected an integer between 0 and 65535"


def test_an_override_of_an_unknown_setting_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="no setting"):
        load_settings(RuntimeSettings, BASE, http_prot=1)


def test_unknown_waybill_variables_are_warned_about_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {**BASE, "WAYBILL_HTTP_PROT": "9000", "OTEL_SERVICE_NAME": "x", "WAYBILL_NATS_URL": "n"}
    with caplog.at_level(logging.WARNING, logger="waybill_runtime.settings"):
        settings = load_settings(RuntimeSettings, env)
    assert settings.http_port == 8080
    warnings = [r.getMessage() for r in caplog.records]
    assert any(
        "WAYBILL_HTTP_PROT" in w and "did you mean WAYBILL_HTTP_PORT?" in w for w in warnings
    )
    assert any("WAYBILL_NATS_URL" in w and "did you mean NATS_URL?" in w for w in warnings)
    assert not any("OTEL_" in w for w in warnings)
    assert unknown_settings(RuntimeSettings, env) == ["WAYBILL_HTTP_PROT", "WAYBILL_NATS_URL"]


def test_the_sandboxes_variables_are_not_unknown_settings() -> None:
    # A local stack's services inherit what its partner sandboxes read.
    env = {"WAYBILL_SANDBOX_ODOO_VERSION": "19", "WAYBILL_SANDBOXX": "1"}
    assert unknown_settings(RuntimeSettings, env) == ["WAYBILL_SANDBOXX"]


def test_the_real_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYBILL_SERVICE", "auditor")
    monkeypatch.setenv("WAYBILL_FETCH_BATCH", "5")
    settings = load_settings(RuntimeSettings)
    assert (settings.service, settings.fetch_batch) == ("auditor", 5)


def test_describe_settings_lists_every_variable_with_its_default() -> None:
    described = {info.env_var: info for info in describe_settings(CarrierRouterSettings)}
    assert described["NATS_URL"].default == "nats://127.0.0.1:4222"
    assert described["WAYBILL_RETRY_BACKOFF_S"].default == "1,5,30,120,600"
    assert described["WAYBILL_HTTP_PORT"].expected == "an integer between 0 and 65535"
    assert "0 = any free port" in described["WAYBILL_HTTP_PORT"].description
    assert described["WAYBILL_API_KEY"].default == ""
    assert described["WAYBILL_LABEL_FORMAT"].default == "LabelFormat.PDF"
    assert not described["WAYBILL_SERVICE"].required
    assert describe_settings(RuntimeSettings)[0].required


class PartnerSettings(RuntimeSettings, frozen=True, kw_only=True):
    partner_api_key: Annotated[str, msgspec.Meta(min_length=1), SECRET] = "sandbox-key"
    partner_webhook_secret: Annotated[
        str, msgspec.Meta(min_length=1), SECRET, known_secrets("partner-sandbox-secret")
    ]
    partner_password: Annotated[str | None, SECRET] = None
    partner_url: str = "http://127.0.0.1:8071"


def partner(**env: str) -> PartnerSettings:
    return load_settings(PartnerSettings, {**BASE, **env})


def test_services_listen_on_this_machine_only_unless_told_otherwise() -> None:
    assert load_settings(RuntimeSettings, BASE).http_host == "127.0.0.1"
    opened = load_settings(RuntimeSettings, {**BASE, "WAYBILL_HTTP_HOST": "0.0.0.0"})
    assert opened.http_host == "0.0.0.0"


def test_a_secret_at_its_default_or_a_known_sandbox_value_is_refused_outside_a_local_stack() -> (
    None
):
    settings = partner(WAYBILL_PARTNER_WEBHOOK_SECRET="partner-sandbox-secret")
    assert well_known_secrets(settings) == [
        "WAYBILL_PARTNER_API_KEY",
        "WAYBILL_PARTNER_WEBHOOK_SECRET",
    ]
    with pytest.raises(SettingsError) as refused:
        refuse_known_secrets(settings)
    message = str(refused.value)
    assert message.startswith(
        "WAYBILL_PARTNER_API_KEY, WAYBILL_PARTNER_WEBHOOK_SECRET still hold a well-known "
        "sandbox value"
    )
    assert "WAYBILL_LOCAL_STACK=true" in message
    assert "sandbox-key" not in message  # the values themselves are not repeated


def test_one_known_secret_is_named_alone() -> None:
    settings = partner(
        WAYBILL_PARTNER_WEBHOOK_SECRET="partner-sandbox-secret",
        WAYBILL_PARTNER_API_KEY="live-key-9f2",
    )
    with pytest.raises(SettingsError) as refused:
        refuse_known_secrets(settings)
    assert str(refused.value).startswith("WAYBILL_PARTNER_WEBHOOK_SECRET still holds a")


def test_real_secrets_are_accepted_anywhere() -> None:
    settings = partner(
        WAYBILL_PARTNER_API_KEY="live-key-9f2", WAYBILL_PARTNER_WEBHOOK_SECRET="whs-live-77a1"
    )
    assert well_known_secrets(settings) == []
    refuse_known_secrets(settings)


def test_sandbox_secrets_are_accepted_in_a_local_stack() -> None:
    settings = partner(
        WAYBILL_PARTNER_WEBHOOK_SECRET="partner-sandbox-secret", WAYBILL_LOCAL_STACK="true"
    )
    assert settings.local_stack is True
    refuse_known_secrets(settings)


def test_settings_shown_anywhere_show_no_secret() -> None:
    settings = partner(
        WAYBILL_PARTNER_API_KEY="live-key-9f2",
        WAYBILL_PARTNER_WEBHOOK_SECRET="whs-live-77a1",
    )
    for shown in (repr(settings), str(settings), f"{settings!r}", str(settings_dump(settings))):
        assert "live-key-9f2" not in shown and "whs-live-77a1" not in shown
    dump = settings_dump(settings)
    assert dump["WAYBILL_PARTNER_API_KEY"] == dump["WAYBILL_PARTNER_WEBHOOK_SECRET"] == "***"
    assert dump["WAYBILL_PARTNER_PASSWORD"] is None  # an unset secret shows as unset
    assert dump["WAYBILL_PARTNER_URL"] == "http://127.0.0.1:8071"
    assert "partner_url='http://127.0.0.1:8071'" in repr(settings)
    assert repr(settings).startswith("PartnerSettings(service='carrier-router', ")


def test_the_secret_values_are_what_the_log_must_cut_out() -> None:
    settings = partner(
        WAYBILL_PARTNER_API_KEY="live-key-9f2", WAYBILL_PARTNER_WEBHOOK_SECRET="whs-live-77a1"
    )
    assert sorted(settings.secret_values()) == ["live-key-9f2", "whs-live-77a1"]


# -- secret settings from a mounted Secret (WAYBILL_SECRETS_DIR) -------------------------


class MountedSecretSettings(RuntimeSettings, frozen=True, kw_only=True):
    partner_api_key: Annotated[str | None, SECRET] = None
    partner_webhook_secret: Annotated[str | None, SECRET] = None
    partner_url: str = "https://partner.example.com"


def _mounted(folder: Path, files: dict[str, str]) -> dict[str, str]:
    folder.mkdir()
    # What the kubelet writes beside the keys: its own bookkeeping, never a setting.
    (folder / "..data").mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return {**BASE, "WAYBILL_SECRETS_DIR": str(folder)}


def test_secret_settings_come_from_the_files_named_after_them(tmp_path: Path) -> None:
    env = _mounted(tmp_path / "secrets", {"WAYBILL_PARTNER_API_KEY": "k-123456789\n"})
    settings = load_settings(MountedSecretSettings, env)
    assert settings.partner_api_key == "k-123456789"  # the file's trailing newline is not it
    assert settings.partner_webhook_secret is None  # no file: unset, as an optional key


def test_the_variable_wins_over_the_file(tmp_path: Path) -> None:
    env = _mounted(tmp_path / "secrets", {"WAYBILL_PARTNER_API_KEY": "from-file"})
    env["WAYBILL_PARTNER_API_KEY"] = "from-env"
    assert load_settings(MountedSecretSettings, env).partner_api_key == "from-env"


def test_a_file_that_names_no_secret_setting_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Only secrets come from files: a plain setting named by a file is not read from it.
    env = _mounted(tmp_path / "secrets", {"WAYBILL_PARTNER_URL": "https://evil.example.com"})
    with caplog.at_level(logging.WARNING, logger="waybill_runtime.settings"):
        settings = load_settings(MountedSecretSettings, env)
    assert settings.partner_url == "https://partner.example.com"
    warnings = [r.getMessage() for r in caplog.records]
    assert any("WAYBILL_PARTNER_URL" in w and "no secret setting" in w for w in warnings)
    assert not any("..data" in w for w in warnings)


def test_a_missing_folder_or_an_unreadable_file_is_named(tmp_path: Path) -> None:
    message = error_for(
        MountedSecretSettings, {**BASE, "WAYBILL_SECRETS_DIR": str(tmp_path / "no")}
    )
    assert "WAYBILL_SECRETS_DIR=" in message and "no such folder" in message
    env = _mounted(tmp_path / "secrets", {"WAYBILL_PARTNER_API_KEY": ""})
    (tmp_path / "secrets" / "WAYBILL_PARTNER_API_KEY").write_bytes(b"\xff\xfe")
    message = error_for(MountedSecretSettings, env)
    assert "WAYBILL_PARTNER_API_KEY" in message and "cannot be read" in message


def test_a_bad_secret_from_a_file_is_named_without_its_value(tmp_path: Path) -> None:
    env = _mounted(tmp_path / "secrets", {"WAYBILL_FACT_ID_KEY": "short-secret"})
    message = error_for(MountedSecretSettings, env)
    assert "WAYBILL_FACT_ID_KEY (the file" in message and "short-secret" not in message


def test_a_bad_secret_from_the_environment_is_named_without_its_value() -> None:
    message = error_for(MountedSecretSettings, {**BASE, "WAYBILL_FACT_ID_KEY": "short-secret"})
    assert "WAYBILL_FACT_ID_KEY=***" in message and "short-secret" not in message
