"""Reading Odoo's wire values."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

import pytest

from waybill_odoo_gateway.odoo_values import ODOO_DATETIME, parse_datetime


def test_odoo_datetimes_are_read_without_strptime(monkeypatch: pytest.MonkeyPatch) -> None:
    # What datetime.strptime calls (looked up on every call, so it can be counted here).
    strptime_module = importlib.import_module("_strptime")
    parsed: list[str] = []
    real = strptime_module._strptime_datetime

    def counting(cls: type[datetime], text: str, fmt: str) -> Any:
        parsed.append(text)
        return real(cls, text, fmt)

    monkeypatch.setattr(strptime_module, "_strptime_datetime", counting)
    values = ["2025-03-14 09:30:00", "2024-02-29 23:59:59", "2025-12-31 00:00:00.123456"]
    moments = [parse_datetime(value) for value in values]
    # As Odoo writes them: no strptime (3 before, about 10 us each, two a release).
    assert parsed == []
    assert moments == [
        datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 12, 31, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "2025-03-14 09:30:00",
        "2025-3-4 9:30:00",  # not Odoo's form, still read as strptime reads it
        "2025-02-30 10:00:00",
        "2025-13-01 10:00:00",
        "2025-03-14T09:30:00",
        "2025-03-14",
        "yesterday",
        "",
        False,
        None,
    ],
)
def test_every_value_reads_as_strptime_reads_it(value: Any) -> None:
    try:
        expected = datetime.strptime(value[:19], ODOO_DATETIME).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        expected = None
    assert parse_datetime(value) == expected
