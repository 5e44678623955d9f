"""How the control tower writes times: stages in seconds to days, partners' answers in ms."""

from __future__ import annotations

import pytest

from waybill_auditor.tower.render import NOTHING, duration, latency


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0, "0 ms"),
        (0.0424, "42 ms"),
        (0.9994, "999 ms"),
        (1.2, "1 s"),
        (75, "1 min"),
        (None, NOTHING),
    ],
)
def test_a_partners_answer_time_is_in_milliseconds_under_a_second(
    seconds: float | None, shown: str
) -> None:
    # Partners answer in well under a second: "0 s" for all of them said nothing.
    assert latency(seconds) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0 s"), (45, "45 s"), (720, "12 min"), (11_100, "3 h 5 min"), (187_200, "2 d 4 h")],
)
def test_time_in_a_stage_is_said_the_way_people_say_it(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown
