"""How a sandbox database is set up beyond its demo data: the company's settings, the
installed modules, the operation type's printing, the users' API keys.

Each is something real Odoo databases differ in and the gateway must cope with
(issue 15); :class:`~waybill_sandboxes.odoo.sandbox.OdooSettings` chooses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from waybill_sandboxes.odoo.env import xmlid_to_record
from waybill_sandboxes.odoo.registry import Registry
from waybill_sandboxes.odoo.users import Credential
from waybill_sandboxes.odoo.values import DATETIME_FORMAT
from waybill_sandboxes.odoo.webhooks import install_field_records

if TYPE_CHECKING:
    from waybill_sandboxes.odoo.sandbox import OdooSettings

__all__ = ["install_setup", "installed_modules"]


def installed_modules(registry: Registry) -> list[str]:
    """The modules a Waybill-ready database has in this version (ir.module.module)."""
    version = registry.version
    modules = ["base", "mail", "product", "sale", "stock", "sale_stock", "sale_management"]
    if registry.with_delivery:
        modules.append(version.delivery_module)
        if version.major >= 18:
            modules.append("delivery")  # 18.0: sale-side delivery, stock_delivery for pickings
    if version.sms_confirmation_default:
        modules += ["sms", "stock_sms"]
    if version.has_webhooks:
        # base_automation depends on sms in 17.0+ (its manifest).
        modules += ["sms", "base_automation"]
    return sorted(set(modules))


def install_setup(
    registry: Registry, settings: OdooSettings, credentials: Sequence[Credential]
) -> None:
    """Create the company, the module list and the API key records; set the options."""
    version = registry.version
    if version.has_webhooks:  # what automation rules name their fields by (17+)
        install_field_records(registry)
    company: dict[str, Any] = {"name": "YourCompany"}
    if version.sms_confirmation_default:
        sms = settings.sms_confirmation
        company["stock_move_sms_validation"] = True if sms is None else sms
    registry.create("res.company", [company], uid=1)
    for module in installed_modules(registry):
        registry.create(
            "ir.module.module", [{"name": module, "shortdesc": module, "state": "installed"}], 1
        )
    if version.has_autoprint and settings.auto_print_delivery_slip:
        _model, out_type = xmlid_to_record(registry, "stock.picking_type_out")
        registry.write("stock.picking.type", [out_type], {"auto_print_delivery_slip": True}, uid=1)
    max_days = version.api_key_max_days
    for credential in credentials:
        values: dict[str, Any] = {"name": "waybill", "user_id": credential.uid, "scope": "rpc"}
        if max_days is not None:
            days = max_days if settings.api_key_days is None else settings.api_key_days
            expires = datetime.now(UTC) + timedelta(days=days)
            credential.api_key_expires_at = expires
            values["expiration_date"] = expires.strftime(DATETIME_FORMAT)
        registry.create("res.users.apikeys", [values], uid=1)
