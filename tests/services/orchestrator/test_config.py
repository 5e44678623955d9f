"""The orchestrator's settings: read from WAYBILL_* variables, refused in one line when wrong."""

from __future__ import annotations

import pytest

from waybill_orchestrator.config import OrchestratorSettings
from waybill_orchestrator.stages import Stage
from waybill_runtime.settings import SettingsError, load_settings


def test_deadlines_and_attempts_come_from_the_environment() -> None:
    settings = load_settings(
        OrchestratorSettings,
        environ={
            "WAYBILL_SERVICE": "orchestrator",
            "WAYBILL_DEADLINE_IN_WAREHOUSE_S": "90",
            "WAYBILL_DEADLINE_BOOKING_S": "12.5",
            "WAYBILL_BOOKING_ATTEMPTS": "3",
            "WAYBILL_OPS_ASSIGNEE_LOGIN": "ops.lead",
        },
    )
    policy = settings.policy()
    assert policy.deadlines_s[Stage.PICKED] == 90.0
    assert policy.deadlines_s[Stage.BOOKING] == 12.5
    assert policy.deadlines_s[Stage.RECORDING] == 600.0
    assert Stage.SHIPPED not in policy.deadlines_s and Stage.HELD not in policy.deadlines_s
    assert (policy.booking_attempts, policy.ops_assignee_login) == (3, "ops.lead")


def test_return_deadlines_come_from_the_environment() -> None:
    settings = load_settings(
        OrchestratorSettings,
        environ={
            "WAYBILL_SERVICE": "orchestrator",
            "WAYBILL_RETURN_PARCEL_DEADLINE_S": "86400",
            "WAYBILL_OPS_ASSIGNEE_LOGIN": "service.desk",
        },
    )
    policy = settings.return_policy()
    assert (policy.parcel_deadline_s, policy.step_deadline_s) == (86400.0, 600.0)
    assert policy.ops_assignee_login == "service.desk"


def test_defaults_need_nothing_but_the_service_name() -> None:
    settings = load_settings(OrchestratorSettings, environ={"WAYBILL_SERVICE": "orchestrator"})
    assert settings.deadline_in_warehouse_s == 1800.0
    assert settings.ops_assignee_login is None
    assert settings.finished_order_ttl_s == 35 * 86400  # beyond the dead letters' 30 days
    assert settings.return_parcel_deadline_s == 14 * 86400


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WAYBILL_DEADLINE_BOOKING_S", "0"),
        ("WAYBILL_DEADLINE_SWEEP_INTERVAL_S", "soon"),
        ("WAYBILL_BOOKING_ATTEMPTS", "0"),
        ("WAYBILL_FINISHED_ORDER_TTL_S", "-1"),
        ("WAYBILL_FINISHED_ORDER_TTL_S", "0.5"),
        ("WAYBILL_RETURN_PARCEL_DEADLINE_S", "0"),
        ("WAYBILL_RETURN_STEP_DEADLINE_S", "two weeks"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(
            OrchestratorSettings, environ={"WAYBILL_SERVICE": "orchestrator", variable: value}
        )
