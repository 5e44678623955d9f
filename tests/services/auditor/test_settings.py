"""The auditor's settings: where the database goes, per-stage deadlines from JSON, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from waybill_auditor.config import AuditorSettings
from waybill_auditor.stages import DEFAULT_STUCK_AFTER_S, Stage
from waybill_runtime.settings import SettingsError, load_settings


def settings(**env: str) -> AuditorSettings:
    return load_settings(AuditorSettings, env, service="auditor")


def test_the_database_goes_under_the_state_folder_unless_named() -> None:
    assert settings(WAYBILL_STATE_DIR="/srv/state").database_path() == Path(
        "/srv/state/auditor/audit.sqlite"
    )
    assert settings(WAYBILL_AUDIT_DB="/data/trail.sqlite").database_path() == Path(
        "/data/trail.sqlite"
    )


def test_stage_deadlines_from_json_override_only_the_stages_they_name() -> None:
    deadlines = settings(WAYBILL_STUCK_AFTER_S='{"accepted": 5, "held": 0.5}').deadlines()

    assert deadlines[Stage.ACCEPTED] == 5.0
    assert deadlines[Stage.HELD] == 0.5
    assert deadlines[Stage.BOOKING] == DEFAULT_STUCK_AFTER_S[Stage.BOOKING]
    assert Stage.DELIVERED not in deadlines and Stage.CANCELLED not in deadlines


def test_personal_data_is_masked_unless_switched_off() -> None:
    assert settings().mask_personal_data is True
    assert settings(WAYBILL_MASK_PERSONAL_DATA="false").mask_personal_data is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"delivered": 60}', "final stage(s) delivered"),
        ('{"nowhere": 60}', "nowhere"),
        ('{"accepted": 0}', "WAYBILL_STUCK_AFTER_S"),
        ("accepted=60", "WAYBILL_STUCK_AFTER_S"),
    ],
)
def test_bad_stage_deadlines_are_refused_with_a_clear_error(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        settings(WAYBILL_STUCK_AFTER_S=value)
