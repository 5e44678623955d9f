"""Waybill's notifier: shipment emails to customers and Standard Webhooks to partners.

The service is :data:`waybill_notifier.app.service`; the signing helper
:func:`sign_standard_webhook` is reusable on its own.
"""

from waybill_notifier.signing import sign_standard_webhook

__all__ = ["sign_standard_webhook"]
