"""Ids the orchestrator derives: shipment ids (the carrier-router's key for one label)
and the commands that need data an order may lack."""

from __future__ import annotations

import pytest

from tests.services.orchestrator.journey import cancelled, released, run
from waybill_orchestrator import instructions
from waybill_orchestrator.instructions import MissingOrderData, shipment_id_for


def test_shipment_id_of_an_odoo_picking_name_is_readable() -> None:
    assert shipment_id_for("WH/OUT/00042", 1) == "shp-WH-OUT-00042-1"
    assert shipment_id_for("WH/OUT/00042", 2) == "shp-WH-OUT-00042-2"


@pytest.mark.parametrize(
    ("first", "second"),
    [("WH/OUT/1", "WH-OUT-1"), ("A B", "A-B"), ("WH/OUT/1", "WH_OUT_1"), ("x.y", "x-y")],
)
def test_refs_that_read_alike_never_share_a_shipment_id(first: str, second: str) -> None:
    assert shipment_id_for(first, 1) != shipment_id_for(second, 1)


def test_a_long_ref_still_gives_a_shipment_id_within_128_characters() -> None:
    long_ref = "WH/OUT/" + "9" * 121
    shipment_id = shipment_id_for(long_ref, 3)
    assert len(shipment_id) <= 128
    assert shipment_id != shipment_id_for(long_ref[:-1] + "8", 3)
    assert shipment_id.endswith("-3")


def test_shipment_id_refuses_an_attempt_below_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        shipment_id_for("WH/OUT/1", 0)


def test_commands_needing_the_order_or_the_shipment_say_what_is_missing() -> None:
    never_released = run(cancelled())
    with pytest.raises(MissingOrderData, match="never released"):
        instructions.release(never_released)
    just_released = run(released())
    with pytest.raises(MissingOrderData, match="no packed parcels"):
        instructions.book(just_released)
    with pytest.raises(MissingOrderData, match="no booked shipment"):
        instructions.record_shipment(just_released)
