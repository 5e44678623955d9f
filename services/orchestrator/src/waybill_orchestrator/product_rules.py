"""What a product must have before it is sent to the warehouse, each refusal with its reason.

Odoo accepts products a warehouse cannot work with: a SKU two products share,
a barcode with a wrong check digit, a storable product nobody weighed. Sent
anyway, the first overwrites the second in the warehouse's catalogue and the
others fail at the packing bench; refused here, they are reported by SKU with
what to fix in Odoo.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from waybill_contracts.model import Product, ProductRejection

__all__ = ["gtin_is_valid", "judged"]

_GTIN_LENGTHS = frozenset({8, 12, 13, 14})


def gtin_is_valid(barcode: str) -> bool:
    """An EAN-8, UPC-A, EAN-13 or GTIN-14 whose last digit is its GS1 check digit."""
    if not barcode.isdigit() or len(barcode) not in _GTIN_LENGTHS:
        return False
    *body, check = (int(digit) for digit in barcode)
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _fault(product: Product, owners: Mapping[str, int]) -> str | None:
    owner = owners.get(product.sku)
    if owner is not None and owner != (product.odoo_product_id or 0):
        return (
            f"SKU {product.sku!r} is also Odoo product {owner}'s: make internal references unique"
        )
    if product.barcode and not gtin_is_valid(product.barcode):
        return f"barcode {product.barcode!r} is not a GTIN-8/12/13/14 with a valid check digit"
    if product.active and not product.weight_kg:
        return "no weight: set the product's weight in Odoo so the warehouse can pack it"
    if product.active and not product.volume_m3:
        return "no volume: set the product's volume in Odoo so the warehouse can cube it"
    return None


def judged(
    products: Iterable[Product], owners: Mapping[str, int]
) -> tuple[list[Product], list[ProductRejection], dict[str, int]]:
    """The products fit to send, the refused ones with why, and SKU owners including these.

    ``owners`` maps each SKU already seen in the run to its Odoo product; a SKU
    reached again by the same product (a page handled again) is that product's.
    """
    fit: list[Product] = []
    refused: list[ProductRejection] = []
    known = dict(owners)
    for product in products:
        reason = _fault(product, known)
        if reason is not None:
            refused.append(ProductRejection(sku=product.sku, reason=reason))
            continue
        known[product.sku] = product.odoo_product_id or 0
        fit.append(product)
    return fit, refused, known
