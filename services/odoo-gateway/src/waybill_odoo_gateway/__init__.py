"""Waybill's Odoo gateway: the one service that talks to Odoo.

In: Odoo webhooks and a polling safety net (orders released and cancelled),
commands that write to Odoo (record shipment, record delivery, post
exception) and the ``picking_status`` query. The service itself is
:data:`waybill_odoo_gateway.app.service`.
"""
