"""Waybill's carrier-router: books labels by rules and price, voids them, tracks shipments."""
