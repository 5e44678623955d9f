"""The work every stage does per message, written once.

The input is the orchestrator's *release to warehouse* command carrying an
order; the output is the wms-bridge's *warehouse order accepted* event. The
transform is what a bridge does before answering: weigh the order and pick
the warehouse that can ship it. Its id is derived from the command's id, so
a redelivered command publishes a duplicate that JetStream drops.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from tests.bench.harness import Command
from waybill_contracts import SubjectMap, encode, fact_id, new_context
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_contracts.events import WarehouseOrderAccepted
from waybill_contracts.model import Address, Order, OrderLine, Party, Quantity

# Orders heavier than this go to the warehouse with pallet handling.
BULK_ABOVE_KG = 30.0
CE_ID = "ce-id"

# Built once, as a hand-written consumer would: typed decoder, shared encoder.
command_decoder = msgspec.json.Decoder(ReleaseToWarehouse)
event_encoder = msgspec.json.Encoder()


def sample_command(number: int) -> ReleaseToWarehouse:
    """A realistic release: one customer, a delivery address, three lines with weights."""
    lines = tuple(
        OrderLine(
            sku=f"SKU-{(number * 7 + line) % 5000:05d}",
            name=f"Shelf bracket, galvanised, size {line + 1}",
            quantity=Quantity(value=Decimal(line + 1), uom="Units"),
            weight_kg=round(0.75 * (line + 1) + (number % 40), 3),
            barcode=f"87123450{number % 100000:05d}{line}",
            odoo_move_id=number * 10 + line + 1,
        )
        for line in range(3)
    )
    order = Order(
        ref=f"WH/OUT/{number:06d}",
        odoo_picking_id=number + 1,
        odoo_sale_order_id=number + 1,
        sale_order_ref=f"S{number:05d}",
        customer=Party(
            name="Jansen Bouw B.V.",
            email="inkoop@jansenbouw.example",
            phone="+31201234567",
            locale="nl_NL",
            odoo_partner_id=1000 + number % 300,
        ),
        ship_to=Address(
            name="Jansen Bouw B.V.",
            street="Havenstraat 12",
            postal_code="1011 AB",
            city="Amsterdam",
            country_code="NL",
        ),
        lines=lines,
        channel="web",
    )
    return ReleaseToWarehouse(order=order)


def accept(command: ReleaseToWarehouse) -> WarehouseOrderAccepted:
    """The transform: weigh the order, choose the warehouse, answer with an acceptance."""
    order: Order = command.order
    weight = sum(line.weight_kg or 0.0 for line in order.lines)
    warehouse = order.warehouse or ("BULK" if weight > BULK_ABOVE_KG else "MAIN")
    return WarehouseOrderAccepted(
        order_ref=order.ref,
        warehouse_order_id=f"{warehouse}-{order.odoo_picking_id:08d}",
        warehouse=warehouse,
        accepted_at=datetime.now(UTC),
    )


def accepted_id(command_id: str) -> str:
    """The dedupe id of the acceptance of command ``command_id``."""
    return fact_id("warehouse_order.accepted", command_id)


def release_commands(count: int) -> list[Command]:
    """``count`` encoded commands (CloudEvents headers and JSON body) as the orchestrator sends."""
    subjects = SubjectMap("bench")
    commands = []
    for number in range(count):
        message = sample_command(number)
        encoded = encode(message, new_context(message, source="orchestrator"), subjects)
        commands.append(Command(headers=encoded.headers, body=encoded.body))
    return commands
