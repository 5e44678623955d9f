"""Customer returns in Odoo: the return picking of a delivery, and receiving it after inspection.

A return is made the way an Odoo user makes it: the ``stock.return.picking``
wizard on the done delivery, one line per returned product with the delivered
move, then its ``create_returns`` (16/17) / ``action_create_returns`` (18+).
Odoo answers with a picking of the Receipts type, origin ``Return of
WH/OUT/00001``, from the customer back to stock.

Once: the return picking's origin is then marked with the return's reference
(``Return of WH/OUT/00001 (RMA-7)``), and a second request for that reference
finds it instead of making another. A request cut off between Odoo making the
picking and the gateway marking it finds the unmarked open return of that
delivery with exactly the requested lines, and marks it.

Receiving: the warehouse reports per product what came back resellable,
damaged or missing, which must add up to what the return expected. Resellable
and damaged units are received (the done quantities, then ``button_validate``
without a backorder: missing units never arrive); damaged units are then
scrapped from stock, as a user does with the picking's Scrap button
(``stock.scrap`` on the picking, ``action_validate``). Received again, the done
picking and its scrap orders are found and nothing is done twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from waybill_odoo_gateway.deliveries import Picking
from waybill_odoo_gateway.odoo_client import OdooClient
from waybill_odoo_gateway.odoo_values import decimal_quantity, first_id, many2one_id
from waybill_odoo_gateway.picking_validation import PickedAgainstDemand, record_picked, validate
from waybill_runtime.outcomes import PermanentError

__all__ = [
    "InspectedLine",
    "ReceivedReturn",
    "ReturnPicking",
    "ReturnRequest",
    "ReturnedLine",
    "check_lines",
    "create_return",
    "delivered_moves",
    "find_return",
    "receive_return",
    "with_skus",
]


@dataclass(frozen=True)
class ReturnedLine:
    """A product the customer sends back: its SKU (Odoo's internal reference) and quantity."""

    sku: str
    quantity: Decimal


@dataclass(frozen=True)
class ReturnRequest:
    """A return of part of a delivery, named by its RMA reference (unique per return)."""

    reference: str
    delivery: str
    """The delivered picking's name (``WH/OUT/00001``)."""
    lines: tuple[ReturnedLine, ...]


@dataclass(frozen=True)
class ReturnPicking:
    """The return picking in Odoo."""

    id: int
    name: str
    state: str
    created: bool
    """False when an earlier request had made it already."""


@dataclass(frozen=True)
class InspectedLine:
    """What the warehouse found of one returned product."""

    sku: str
    resellable: Decimal = Decimal(0)
    damaged: Decimal = Decimal(0)
    missing: Decimal = Decimal(0)

    @property
    def received(self) -> Decimal:
        """The units that physically came back."""
        return self.resellable + self.damaged


@dataclass(frozen=True)
class ReceivedReturn:
    """The return picking after receiving: its state, and the scrap orders of damaged goods."""

    id: int
    name: str
    state: str
    scrap_ids: tuple[int, ...] = field(default=())


def _marked_origin(delivery: str, reference: str) -> str:
    return f"Return of {delivery} ({reference})"


def check_lines(reference: str, lines: Sequence[ReturnedLine], verb: str) -> None:
    """Refuse a return's lines that cannot be ``verb``-ed ("returned", "credited"): no
    reference, no line, a SKU twice, a quantity that is not positive."""
    if not reference.strip():
        raise PermanentError(f"nothing is {verb} without the return's (RMA) reference")
    if not lines:
        raise PermanentError(f"return {reference}: no product is {verb}")
    skus = [line.sku for line in lines]
    if len(set(skus)) != len(skus):
        raise PermanentError(f"return {reference} names a product twice: {skus}")
    for line in lines:
        if line.quantity <= 0:
            raise PermanentError(
                f"return {reference}: {line.sku} has quantity {line.quantity}; "
                f"only positive quantities are {verb}"
            )


async def with_skus(
    odoo: OdooClient, rows: Sequence[dict[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    """``(SKU, row)`` of the rows (moves, invoice lines) whose ``product_id`` has an internal
    reference, in their order: the warehouse names products by SKU, Odoo by id."""
    products = sorted({p for row in rows if (p := many2one_id(row.get("product_id")))})
    codes = await odoo.call("product.product", "read", products, fields=["default_code"])
    sku_of = {int(code["id"]): code["default_code"] for code in codes}
    return [
        (sku_of[product], dict(row))
        for row in rows
        if (product := many2one_id(row.get("product_id"))) is not None
        and isinstance(sku_of.get(product), str)
    ]


async def find_return(odoo: OdooClient, reference: str, delivery: str) -> ReturnPicking | None:
    """The return picking made for ``reference`` from ``delivery``, if there is one."""
    found = await odoo.call(
        "stock.picking",
        "search_read",
        domain=[("origin", "=", _marked_origin(delivery, reference))],
        fields=["name", "state"],
        order="id",
    )
    live = [row for row in found if row["state"] != "cancel"] or found
    if not live:
        return None
    row = live[0]
    return ReturnPicking(
        id=int(row["id"]), name=str(row["name"]), state=row["state"], created=False
    )


async def create_return(odoo: OdooClient, request: ReturnRequest) -> ReturnPicking:
    """The return picking for ``request``: found if made before, else made by Odoo's wizard."""
    check_lines(request.reference, request.lines, "returned")
    await odoo.connect()  # the version decides the wizard's fields and method
    wanted = {line.sku: line.quantity.normalize() for line in request.lines}
    known = await find_return(odoo, request.reference, request.delivery)
    if known is not None:
        made = await _returned_quantities(odoo, known.id)
        if made != wanted:
            # One reference, one return: another content under it is a mistake to fix by hand.
            raise PermanentError(
                f"return {request.reference} was made already as {known.name} with {made}; "
                f"this request asks {wanted}"
            )
        return known
    delivery = await _delivery(odoo, request.delivery)
    moves = await delivered_moves(odoo, delivery)
    lines = _wizard_lines(request, moves, odoo.dialect.return_wizard_has_location)
    adopted = await _unmarked_return(odoo, request, wanted)
    if adopted is None:
        adopted = await _run_wizard(odoo, delivery, lines)
    # The mark is what later requests look for.
    await odoo.call(
        "stock.picking",
        "write",
        [adopted],
        vals={"origin": _marked_origin(request.delivery, request.reference)},
    )
    [row] = await odoo.call("stock.picking", "read", [adopted], fields=["name", "state"])
    return ReturnPicking(id=adopted, name=str(row["name"]), state=row["state"], created=True)


async def _delivery(odoo: OdooClient, name: str) -> dict[str, Any]:
    found = await odoo.call(
        "stock.picking",
        "search_read",
        domain=[("name", "=", name), ("picking_type_code", "=", "outgoing")],
        fields=["name", "state", "location_id", "move_ids"],
        limit=1,
    )
    if not found:
        raise PermanentError(f"Odoo has no delivery {name!r}: nothing to return")
    [row] = found
    if row["state"] != "done":
        raise PermanentError(
            f"delivery {name} is {row['state']!r} in Odoo, not done: only what was delivered "
            "can be returned"
        )
    return dict(row)


async def delivered_moves(odoo: OdooClient, delivery: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The delivery's done moves by SKU, with the product id and the delivered quantity."""
    done_field = odoo.dialect.move_done_field
    rows = await odoo.call(
        "stock.move",
        "read",
        list(delivery["move_ids"]),
        fields=["product_id", "state", done_field],
    )
    done = [row for row in rows if row["state"] == "done"]
    by_sku: dict[str, dict[str, Any]] = {}
    for sku, row in await with_skus(odoo, done):
        if sku not in by_sku:
            by_sku[sku] = {
                "move": int(row["id"]),
                "product": many2one_id(row["product_id"]),
                "delivered": decimal_quantity(row[done_field]),
            }
    return by_sku


def _wizard_lines(
    request: ReturnRequest, moves: dict[str, dict[str, Any]], to_refund: bool
) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for line in request.lines:
        move = moves.get(line.sku)
        if move is None:
            raise PermanentError(
                f"return {request.reference}: {line.sku} was not delivered in {request.delivery}"
            )
        if line.quantity > move["delivered"]:
            raise PermanentError(
                f"return {request.reference}: {line.quantity} {line.sku} returned, but "
                f"{request.delivery} delivered {move['delivered']}"
            )
        values: dict[str, Any] = {
            "product_id": move["product"],
            "move_id": move["move"],
            "quantity": float(line.quantity),
        }
        if to_refund:  # 16/17: update the delivered quantity on the sale order
            values["to_refund"] = True
        lines.append(values)
    return lines


async def _unmarked_return(
    odoo: OdooClient, request: ReturnRequest, wanted: dict[str, Decimal]
) -> int | None:
    """An open return of the delivery that no reference marks yet, with exactly the requested
    lines: what an attempt cut off before marking its picking left behind."""
    candidates = await odoo.call(
        "stock.picking",
        "search_read",
        domain=[
            ("origin", "=", f"Return of {request.delivery}"),
            ("state", "not in", ["done", "cancel"]),
        ],
        fields=["id"],
        order="id desc",
    )
    for candidate in candidates:
        if await _returned_quantities(odoo, int(candidate["id"])) == wanted:
            return int(candidate["id"])
    return None


async def _returned_quantities(odoo: OdooClient, picking_id: int) -> dict[str, Decimal]:
    """What a return picking expects back, by SKU."""
    rows = await odoo.call(
        "stock.move",
        "search_read",
        domain=[("picking_id", "=", picking_id)],
        fields=["product_id", "product_uom_qty"],
    )
    return {
        sku: decimal_quantity(row["product_uom_qty"]) for sku, row in await with_skus(odoo, rows)
    }


async def _run_wizard(
    odoo: OdooClient, delivery: dict[str, Any], lines: list[dict[str, Any]]
) -> int:
    dialect = odoo.dialect
    values: dict[str, Any] = {
        "picking_id": delivery["id"],
        "product_return_moves": [(0, 0, line) for line in lines],
    }
    if dialect.return_wizard_has_location:
        # Where the goods go back to: where they were delivered from.
        values["location_id"] = many2one_id(delivery["location_id"])
    context = {
        "active_id": delivery["id"],
        "active_ids": [delivery["id"]],
        "active_model": "stock.picking",
    }
    created = await odoo.call("stock.return.picking", "create", vals_list=[values], context=context)
    wizard = first_id(created)
    if wizard is None:
        raise PermanentError(f"Odoo made no return wizard for {delivery['name']}: {created!r}")
    action = await odoo.call(
        "stock.return.picking", dialect.create_returns_method, [wizard], context=context
    )
    returned = action.get("res_id") if isinstance(action, dict) else None
    if not isinstance(returned, int) or isinstance(returned, bool):
        raise PermanentError(
            f"Odoo's return wizard for {delivery['name']} answered {action!r}, not the return "
            "picking"
        )
    return returned


# --------------------------------------------------------------------- receiving
async def receive_return(
    odoo: OdooClient, picking_id: int, inspected: Sequence[InspectedLine]
) -> ReceivedReturn:
    """Receive the return picking as the warehouse inspected it: resellable and damaged units
    into stock, missing ones not received, then the damaged units scrapped."""
    await odoo.connect()
    done_field = odoo.dialect.move_done_field
    found = await odoo.call(
        "stock.picking",
        "read",
        [picking_id],
        fields=["name", "state", "move_ids", "location_dest_id", "picking_type_code"],
    )
    if not found:
        raise PermanentError(f"Odoo has no return picking {picking_id}")
    [row] = found
    name = str(row["name"])
    if row["picking_type_code"] != "incoming":
        raise PermanentError(f"{name} is not a return (a receipt): nothing to receive")
    moves = await odoo.call(
        "stock.move",
        "read",
        list(row["move_ids"]),
        fields=["product_id", "product_uom_qty", "state", done_field],
    )
    by_sku = await _moves_by_sku(odoo, moves)
    results = _check_inspection(name, by_sku, inspected)
    state = row["state"]
    if state == "done":
        _check_received_as_before(name, by_sku, results, done_field)
    elif state == "cancel":
        if any(line.received for line in results.values()):
            raise PermanentError(f"{name} is cancelled in Odoo: it cannot be received")
    elif not any(line.received for line in results.values()):
        # Nothing came back: the return is cancelled rather than validated empty.
        await odoo.call("stock.picking", "action_cancel", [picking_id])
        state = "cancel"
    else:
        done = {int(move["id"]): float(results[sku].received) for sku, move in by_sku.items()}
        check = PickedAgainstDemand(done=done, differences=())
        await record_picked(odoo, check, list(by_sku.values()))
        picking = Picking(id=picking_id, name=name, state=state, outgoing=False, row=dict(row))
        await validate(odoo, picking)
        state = "done"
    scraps: list[int] = []
    if state == "done":
        location = many2one_id(row["location_dest_id"])
        for sku, move in by_sku.items():
            damaged = results[sku].damaged
            if damaged > 0:
                product = many2one_id(move["product_id"]) or 0
                scraps.append(await _scrap(odoo, picking_id, name, product, location, damaged))
    return ReceivedReturn(id=picking_id, name=name, state=state, scrap_ids=tuple(scraps))


async def _moves_by_sku(
    odoo: OdooClient, moves: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    return dict(await with_skus(odoo, moves))


def _check_inspection(
    name: str, by_sku: dict[str, dict[str, Any]], inspected: Sequence[InspectedLine]
) -> dict[str, InspectedLine]:
    results: dict[str, InspectedLine] = {}
    for line in inspected:
        if line.sku not in by_sku:
            raise PermanentError(f"{name} does not return {line.sku}: its inspection is unexpected")
        if line.sku in results:
            raise PermanentError(f"{name}: {line.sku} was inspected twice in one report")
        if min(line.resellable, line.damaged, line.missing) < 0:
            raise PermanentError(f"{name}: {line.sku} has a negative inspected quantity")
        results[line.sku] = line
    for sku, move in by_sku.items():
        expected = decimal_quantity(move["product_uom_qty"])
        result = results.get(sku)
        if result is None:
            raise PermanentError(f"{name}: no inspection result for {sku} ({expected} expected)")
        reported = (result.resellable + result.damaged + result.missing).normalize()
        if reported != expected:
            raise PermanentError(
                f"{name}: {sku} expected {expected}, the inspection accounts for {reported} "
                f"(resellable {result.resellable}, damaged {result.damaged}, "
                f"missing {result.missing})"
            )
    return results


def _check_received_as_before(
    name: str,
    by_sku: dict[str, dict[str, Any]],
    results: dict[str, InspectedLine],
    done_field: str,
) -> None:
    for sku, move in by_sku.items():
        before = decimal_quantity(move[done_field]) if move["state"] == "done" else Decimal(0)
        if before != results[sku].received.normalize():
            raise PermanentError(
                f"{name} was received already with {before} {sku}; this inspection says "
                f"{results[sku].received}: correct it in Odoo by hand"
            )


async def _scrap(
    odoo: OdooClient,
    picking_id: int,
    picking_name: str,
    product: int,
    location: int | None,
    quantity: Decimal,
) -> int:
    """The picking's scrap order of the product, made and validated once."""
    found = await odoo.call(
        "stock.scrap",
        "search_read",
        domain=[("picking_id", "=", picking_id), ("product_id", "=", product)],
        fields=["state"],
        limit=1,
    )
    if found and found[0]["state"] == "done":
        return int(found[0]["id"])
    if found:
        scrap = int(found[0]["id"])
    else:
        scrap_locations = await odoo.call(
            "stock.location", "search", domain=[("scrap_location", "=", True)], limit=1
        )
        if not scrap_locations:
            raise PermanentError("Odoo has no scrap location: damaged goods cannot be scrapped")
        created = await odoo.call(
            "stock.scrap",
            "create",
            vals_list=[{
                "product_id": product,
                "scrap_qty": float(quantity),
                "location_id": location,
                "scrap_location_id": scrap_locations[0],
                "picking_id": picking_id,
                "origin": picking_name,
            }],
        )  # fmt: skip
        made = first_id(created)
        if made is None:
            raise PermanentError(f"Odoo made no scrap order for {picking_name}: {created!r}")
        scrap = made
    answer = await odoo.call("stock.scrap", "action_validate", [scrap])
    if isinstance(answer, dict):
        raise PermanentError(
            f"scrapping the damaged goods of {picking_name}: Odoo asked "
            f"{answer.get('res_model') or answer.get('name')!r} instead (not enough on hand?)"
        )
    return scrap
