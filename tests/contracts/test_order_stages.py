"""One order-stage vocabulary: the orchestrator's status answers and the auditor's stages."""

from __future__ import annotations

import pytest

from waybill_contracts import OrderStage
from waybill_contracts.examples import example_of
from waybill_contracts.governance import take_snapshot
from waybill_contracts.queries import OrderStatusResponse
from waybill_contracts.stages import FINAL, MAIN_LINE, is_before, rank


def test_the_main_line_runs_from_release_to_delivery_and_ranks_in_order() -> None:
    assert (MAIN_LINE[0], MAIN_LINE[-1]) == (OrderStage.RELEASED, OrderStage.DELIVERED)
    assert [rank(stage) for stage in MAIN_LINE] == list(range(len(MAIN_LINE)))
    assert is_before(OrderStage.BOOKING, OrderStage.SHIPPED)
    assert not is_before(OrderStage.SHIPPED, OrderStage.RECORDING)
    assert {OrderStage.DELIVERED, OrderStage.CANCELLED} == FINAL


@pytest.mark.parametrize("stage", [OrderStage.HELD, OrderStage.CANCELLING, OrderStage.UNKNOWN])
def test_a_stage_beside_the_main_line_has_no_rank(stage: OrderStage) -> None:
    with pytest.raises(ValueError, match="not on the main line"):
        rank(stage)


def test_the_status_answers_stage_travels_as_a_plain_string_readers_may_not_know() -> None:
    # A str on the wire (as in 1.0): a later stage must not break an older reader,
    # so the enum is in no message's schema.
    snapshot = take_snapshot()
    assert snapshot.structs["OrderStatusResponse"].fields["stage"].type == "null | str"
    assert "OrderStage" not in snapshot.enums
    assert OrderStage(example_of(OrderStatusResponse).stage or "") is OrderStage.SHIPPED


def test_the_orchestrator_and_the_auditor_speak_the_contracts_stages() -> None:
    from waybill_auditor import stages as auditor_stages
    from waybill_orchestrator import stages as orchestrator_stages

    assert orchestrator_stages.Stage is OrderStage
    assert auditor_stages.Stage is OrderStage
    # The orchestrator walks the main line without the auditor's finer steps.
    assert set(orchestrator_stages.MAIN_LINE) < set(MAIN_LINE)
    assert list(orchestrator_stages.MAIN_LINE) == [
        stage for stage in MAIN_LINE if stage in orchestrator_stages.MAIN_LINE
    ]
