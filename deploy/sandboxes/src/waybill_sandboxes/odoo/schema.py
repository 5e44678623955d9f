"""Fields of the simulated Odoo models, per Odoo version.

Only the models and fields an integration touches are simulated, with the
names, types and selections real Odoo uses. Version differences (PARTNERS.md)
live here: ``quantity_done`` vs ``quantity`` + ``picked``, the sale order
``done`` state of 16 vs the ``locked`` flag of 17+, ``product_uom_id`` on sale
order lines in 19, storable products as ``type="consu"`` + ``is_storable``
from 18.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from waybill_sandboxes.odoo.versions import OdooVersion

RELATIONAL_TYPES = frozenset({"many2one", "one2many", "many2many"})
X2MANY_TYPES = frozenset({"one2many", "many2many"})
# Fields the ORM maintains itself; writes to them are ignored as Odoo does.
MAGIC_FIELDS = ("id", "display_name", "create_date", "create_uid", "write_date", "write_uid")


@dataclass(frozen=True)
class Field:
    """One field of a model, described the way ``fields_get`` reports it."""

    name: str
    type: str
    string: str
    relation: str | None = None
    # one2many: the field on the comodel pointing back (a many2one, or the
    # integer ``res_id`` of mail.message / mail.activity)
    inverse: str | None = None
    # one2many onto mail.message / mail.activity: the comodel's field holding the model name
    model_field: str | None = None
    selection: tuple[tuple[str, str], ...] = ()
    required: bool = False
    default: Any = None
    # computed from a many2one path, e.g. picking_type_code = picking_type_id.code
    related: tuple[str, ...] = ()
    computed: bool = False
    # computed, not stored, and equal to another field of the same record (16/17 shipping_weight)
    mirrors: str | None = None

    @property
    def stored(self) -> bool:
        """Whether the registry keeps a value for this field on the record."""
        return not (self.computed or self.related or self.mirrors or self.type == "one2many")

    def describe(self) -> dict[str, Any]:
        """The ``fields_get`` entry for this field."""
        info: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "string": self.string,
            "required": self.required,
            "readonly": self.computed
            or bool(self.related or self.mirrors)
            or self.name in MAGIC_FIELDS,
            "store": self.stored or self.type == "one2many",
            "searchable": True,
            "sortable": self.stored,
            "manual": False,
        }
        if self.relation:
            info["relation"] = self.relation
        if self.type == "one2many" and self.inverse:
            info["relation_field"] = self.inverse
        if self.type == "selection":
            info["selection"] = [list(option) for option in self.selection]
        if self.related:
            info["related"] = ".".join(self.related)
        return info


@dataclass(frozen=True)
class ModelSpec:
    """A simulated model: its technical name, label, fields and default order."""

    name: str
    description: str
    fields: dict[str, Field]
    order: str = "id"
    rec_name: str = "name"
    mail_thread: bool = False  # has chatter (message_post) and activities
    writable: bool = True  # False for the technical models integrators only read
    # Only Settings / Administration users may use it at all, reading included
    # (base.automation from 17.0: its ir.model.access.csv grants base.group_system only).
    admin_only: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _f(name: str, type_: str, string: str, **options: Any) -> Field:
    return Field(name=name, type=type_, string=string, **options)


def _m2o(name: str, string: str, relation: str, **options: Any) -> Field:
    return Field(name=name, type="many2one", string=string, relation=relation, **options)


def _o2m(name: str, string: str, relation: str, inverse: str, **options: Any) -> Field:
    return Field(
        name=name, type="one2many", string=string, relation=relation, inverse=inverse, **options
    )


def _sel(name: str, string: str, options: tuple[tuple[str, str], ...], **more: Any) -> Field:
    return Field(name=name, type="selection", string=string, selection=options, **more)


LANGUAGES = (
    ("en_US", "English (US)"),
    ("en_GB", "English (UK)"),
    ("de_DE", "German / Deutsch"),
    ("fr_FR", "French / Français"),
    ("nl_NL", "Dutch / Nederlands"),
)
PICKING_STATES = (
    ("draft", "Draft"),
    ("waiting", "Waiting Another Operation"),
    ("confirmed", "Waiting"),
    ("assigned", "Ready"),
    ("done", "Done"),
    ("cancel", "Cancelled"),
)
MOVE_STATES = (
    ("draft", "New"),
    ("waiting", "Waiting Another Move"),
    ("confirmed", "Waiting Availability"),
    ("partially_available", "Partially Available"),
    ("assigned", "Available"),
    ("done", "Done"),
    ("cancel", "Cancelled"),
)
PICKING_TYPE_CODES = (("incoming", "Receipt"), ("outgoing", "Delivery"), ("internal", "Internal"))


def _sale_order_states(version: OdooVersion) -> tuple[tuple[str, str], ...]:
    states = [("draft", "Quotation"), ("sent", "Quotation Sent"), ("sale", "Sales Order")]
    if version.major == 16:
        states.append(("done", "Locked"))
    states.append(("cancel", "Cancelled"))
    return tuple(states)


def _product_types(version: OdooVersion) -> tuple[tuple[str, str], ...]:
    if version.major >= 18:
        return (("consu", "Goods"), ("service", "Service"), ("combo", "Combo"))
    return (("consu", "Consumable"), ("service", "Service"), ("product", "Storable Product"))


def _inventory_mode_fields() -> list[Field]:
    """The counted-quantity fields of ``stock.quant`` (16.0-19.0, addons/stock/models/
    stock_quant.py): ``inventory_quantity`` is what was counted; ``inventory_quantity_set``
    (computed from it, stored, writable) says a count is pending; ``inventory_diff_quantity``
    (stored compute of both) is what applying moves; ``is_outdated`` (not stored) says the
    quantity moved since the count. The sandbox keeps the computed ones in
    :mod:`waybill_sandboxes.odoo.inventory`."""
    return [
        _f("inventory_quantity", "float", "Counted Quantity", default=0.0),
        _f("inventory_quantity_set", "boolean", "Inventory Quantity Set", default=False),
        _f("inventory_diff_quantity", "float", "Difference", computed=True),
        _f("is_outdated", "boolean", "Quantity has been moved since last count", computed=True),
        _f("inventory_date", "date", "Scheduled Date"),
        _m2o("user_id", "Assigned To", "res.users"),
    ]


def _chatter_fields() -> list[Field]:
    return [
        _o2m("message_ids", "Messages", "mail.message", "res_id", model_field="model"),
        _o2m("activity_ids", "Activities", "mail.activity", "res_id", model_field="res_model"),
    ]


def _model_table(version: OdooVersion) -> list[tuple[str, str, list[Field], dict[str, Any]]]:
    """(model, description, fields, options) for every simulated model."""
    uom_field = version.order_line_uom_field
    move_done: list[Field] = (
        [_f("quantity_done", "float", "Quantity Done", default=0.0)]
        if version.major == 16
        else [
            _f("quantity", "float", "Quantity", default=0.0),
            _f("picked", "boolean", "Picked", default=False),
        ]
    )
    product_storable = (
        [_f("is_storable", "boolean", "Track Inventory", default=True)]
        if version.major >= 18
        else []
    )
    # addons/stock/models/stock_picking.py (17.0+): print the delivery slip on validation.
    autoprint = (
        [_f("auto_print_delivery_slip", "boolean", "Auto Print Delivery Slip", default=False)]
        if version.has_autoprint
        else []
    )
    # addons/stock_sms/models/res_company.py (16.0-18.0).
    company_sms = (
        [_f("stock_move_sms_validation", "boolean", "SMS Confirmation", default=True),
         _f("has_received_warning_stock_sms", "boolean", "Has received warning", default=False)]
        if version.sms_confirmation_default
        else []
    )  # fmt: skip
    # addons/delivery/models/stock_picking.py 16.0/17.0: computed from packages and the
    # bulk weight, store=False, so writes are dropped; stored in 18.0+ stock_delivery.
    shipping_weight = (
        _f("shipping_weight", "float", "Weight for Shipping", default=0.0)
        if version.shipping_weight_stored
        else _f("shipping_weight", "float", "Weight for Shipping", mirrors="weight")
    )
    sale_locked = [] if version.major == 16 else [_f("locked", "boolean", "Locked", default=False)]
    # addons/stock/models/stock_picking.py 17.0+: ``return_id`` ("Return of"); 16.0 links
    # a return only through its moves' ``origin_returned_move_id``.
    return_of = [_m2o("return_id", "Return of", "stock.picking")] if version.major >= 17 else []
    # stock_account's ``to_refund`` ("Update quantities on SO/PO") on moves, 16.0/17.0; 18.0
    # dropped it: every return updates the delivered quantity.
    move_to_refund = (
        [_f("to_refund", "boolean", "Update quantities on SO/PO", default=False)]
        if version.major <= 17
        else []
    )
    return [
        ("res.country", "Country", [_f("name", "char", "Country Name", required=True),
                                    _f("code", "char", "Country Code")], {}),
        ("res.country.state", "Country state", [
            _f("name", "char", "State Name", required=True), _f("code", "char", "State Code"),
            _m2o("country_id", "Country", "res.country")], {}),
        ("res.partner", "Contact", [
            _f("name", "char", "Name", required=True), _f("ref", "char", "Reference"),
            _f("is_company", "boolean", "Is a Company", default=False),
            _sel("type", "Address Type", (("contact", "Contact"), ("invoice", "Invoice Address"),
                                          ("delivery", "Delivery Address")), default="contact"),
            _f("street", "char", "Street"), _f("street2", "char", "Street2"),
            _f("zip", "char", "Zip"), _f("city", "char", "City"),
            _m2o("state_id", "State", "res.country.state"),
            _m2o("country_id", "Country", "res.country"),
            _f("phone", "char", "Phone"), _f("email", "char", "Email"),
            _sel("lang", "Language", LANGUAGES, default="en_US"),
            _f("active", "boolean", "Active", default=True)],
            {"order": "display_name, id desc"}),
        ("res.users", "User", [
            _f("name", "char", "Name", required=True), _f("login", "char", "Login", required=True),
            _m2o("partner_id", "Related Partner", "res.partner"),
            _sel("lang", "Language", LANGUAGES, default="en_US"),
            _f("tz", "char", "Timezone", default="Europe/Brussels"),
            _f("share", "boolean", "Share User", default=False),
            _f("active", "boolean", "Active", default=True)], {"order": "name, login"}),
        ("uom.uom", "Product Unit of Measure", [_f("name", "char", "Unit", required=True)], {}),
        ("product.product", "Product", [
            _f("name", "char", "Name", required=True),
            _f("default_code", "char", "Internal Reference"), _f("barcode", "char", "Barcode"),
            _sel("type", "Product Type", _product_types(version), default="consu"),
            *product_storable,
            _f("weight", "float", "Weight", default=0.0),
            _f("volume", "float", "Volume", default=0.0),
            _sel("tracking", "Tracking", (("serial", "By Unique Serial Number"),
                                          ("lot", "By Lots"), ("none", "By Quantity")),
                 default="none"),
            _f("list_price", "float", "Sales Price", default=1.0),
            _m2o("uom_id", "Unit", "uom.uom"),
            _f("active", "boolean", "Active", default=True)],
            {"order": "default_code, name, id"}),
        ("stock.location", "Inventory Locations", [
            _f("name", "char", "Location Name", required=True),
            _f("complete_name", "char", "Full Location Name"),
            # addons/stock/models/stock_location.py: scanned in the barcode app; the
            # warehouse's own locations get "<code>-STOCK" (stock_warehouse.py).
            _f("barcode", "char", "Barcode"),
            _sel("usage", "Location Type", (("supplier", "Vendor"), ("view", "View"),
                                            ("internal", "Internal"), ("customer", "Customer"),
                                            ("inventory", "Inventory Loss")),
                 default="internal"),
            # addons/stock/models/stock_location.py: where stock.scrap may send goods.
            _f("scrap_location", "boolean", "Is a Scrap Location?", default=False)],
            {"rec_name": "complete_name", "order": "complete_name, id"}),
        ("stock.lot", "Lot/Serial", [
            _f("name", "char", "Lot/Serial Number", required=True),
            _m2o("product_id", "Product", "product.product", required=True)], {}),
        ("stock.picking.type", "Picking Type", [
            _f("name", "char", "Operation Type", required=True),
            _sel("code", "Type of Operation", PICKING_TYPE_CODES, required=True),
            _f("sequence_code", "char", "Sequence Prefix", required=True),
            _m2o("default_location_src_id", "Default Source Location", "stock.location"),
            _m2o("default_location_dest_id", "Default Destination Location", "stock.location"),
            # The operation type a return of this type's pickings gets (Receipts for deliveries).
            _m2o("return_picking_type_id", "Operation Type for Returns", "stock.picking.type"),
            *autoprint], {}),
        ("stock.quant", "Quants", [
            _m2o("product_id", "Product", "product.product", required=True),
            _m2o("location_id", "Location", "stock.location", required=True),
            _m2o("lot_id", "Lot/Serial Number", "stock.lot"),
            _f("quantity", "float", "Quantity", default=0.0),
            _f("reserved_quantity", "float", "Reserved Quantity", default=0.0),
            *_inventory_mode_fields()],
            {"rec_name": "product_id"}),
        ("delivery.carrier", "Shipping Methods", [
            _f("name", "char", "Delivery Method", required=True),
            _sel("delivery_type", "Provider", (("fixed", "Fixed Price"),
                                               ("base_on_rule", "Based on Rules")),
                 default="fixed"),
            _f("active", "boolean", "Active", default=True)], {}),
        ("sale.order", "Sales Order", [
            _f("name", "char", "Order Reference", default="New"),
            _sel("state", "Status", _sale_order_states(version), default="draft"), *sale_locked,
            _m2o("partner_id", "Customer", "res.partner", required=True),
            _m2o("partner_invoice_id", "Invoice Address", "res.partner"),
            _m2o("partner_shipping_id", "Delivery Address", "res.partner"),
            _f("date_order", "datetime", "Order Date"),
            _f("commitment_date", "datetime", "Delivery Date"),
            _f("client_order_ref", "char", "Customer Reference"),
            _o2m("order_line", "Order Lines", "sale.order.line", "order_id"),
            _o2m("picking_ids", "Transfers", "stock.picking", "sale_id"),
            _m2o("carrier_id", "Delivery Method", "delivery.carrier"),
            # Computed (not stored, read-only) from the lines' invoice lines in Odoo; the
            # sandbox keeps it when it invoices (waybill_sandboxes.odoo.accounting).
            Field("invoice_ids", "many2many", "Invoices", relation="account.move",
                  computed=True),
            *_chatter_fields()], {"order": "date_order desc, id desc", "mail_thread": True}),
        ("sale.order.line", "Sales Order Line", [
            _m2o("order_id", "Order Reference", "sale.order", required=True),
            _f("name", "text", "Description"),
            _m2o("product_id", "Product", "product.product"),
            _f("product_uom_qty", "float", "Quantity", default=1.0),
            _m2o(uom_field, "Unit of Measure", "uom.uom"),
            _f("price_unit", "float", "Unit Price", default=0.0),
            _f("qty_delivered", "float", "Delivery Quantity", default=0.0),
            _sel("state", "Order Status", _sale_order_states(version),
                 related=("order_id", "state"))], {"order": "order_id, id"}),
        ("stock.picking", "Transfer", [
            _f("name", "char", "Reference", default="/"), _f("origin", "char", "Source Document"),
            _sel("state", "Status", PICKING_STATES, default="draft"),
            _sel("priority", "Priority", (("0", "Normal"), ("1", "Urgent")), default="0"),
            _m2o("picking_type_id", "Operation Type", "stock.picking.type", required=True),
            _sel("picking_type_code", "Type of Operation", PICKING_TYPE_CODES,
                 related=("picking_type_id", "code")),
            _m2o("partner_id", "Contact", "res.partner"),
            _m2o("location_id", "Source Location", "stock.location"),
            _m2o("location_dest_id", "Destination Location", "stock.location"),
            _f("scheduled_date", "datetime", "Scheduled Date"),
            _f("date_done", "datetime", "Date of Transfer"),
            _o2m("move_ids", "Stock Moves", "stock.move", "picking_id"),
            _m2o("sale_id", "Sales Order", "sale.order"),
            _m2o("backorder_id", "Back Order of", "stock.picking"),
            *return_of,
            _m2o("carrier_id", "Carrier", "delivery.carrier"),
            _f("carrier_tracking_ref", "char", "Tracking Reference"),
            _f("carrier_price", "float", "Shipping Cost", default=0.0),
            _f("weight", "float", "Weight", default=0.0),
            shipping_weight,
            *_chatter_fields()],
            {"order": "priority desc, scheduled_date, id desc", "mail_thread": True}),
        ("stock.move", "Stock Move", [
            _f("name", "char", "Description", required=True),
            _m2o("picking_id", "Transfer", "stock.picking"),
            _m2o("product_id", "Product", "product.product", required=True),
            _f("product_uom_qty", "float", "Demand", default=0.0), *move_done,
            _m2o("product_uom", "UoM", "uom.uom"),
            _sel("state", "Status", MOVE_STATES, default="draft"),
            _m2o("location_id", "Source Location", "stock.location"),
            _m2o("location_dest_id", "Destination Location", "stock.location"),
            _f("origin", "char", "Source Document"),
            _m2o("sale_line_id", "Sale Line", "sale.order.line"),
            # addons/stock/models/stock_move.py: the delivered move a return move gives back.
            _m2o("origin_returned_move_id", "Origin return move", "stock.move"),
            *move_to_refund,
            _m2o("scrap_id", "Scrap operation", "stock.scrap"),
            # addons/stock/models/stock_move.py: set on the moves an applied count makes.
            _f("is_inventory", "boolean", "Inventory", default=False),
            _f("date", "datetime", "Date Scheduled")], {"order": "id"}),
        ("mail.message.subtype", "Message subtypes", [
            _f("name", "char", "Message Type", required=True),
            _f("internal", "boolean", "Internal Only", default=False)], {}),
        ("mail.message", "Message", [
            _f("model", "char", "Related Document Model"),
            _f("res_id", "many2one_reference", "Related Document ID"),
            _f("subject", "char", "Subject"), _f("body", "html", "Contents", default=""),
            _sel("message_type", "Type", (("email", "Incoming Email"), ("comment", "Comment"),
                                          ("notification", "System notification"),
                                          ("auto_comment", "Automated Targeted Notification"),
                                          ("user_notification", "User Specific Notification")),
                 default="comment"),
            _m2o("subtype_id", "Subtype", "mail.message.subtype"),
            _m2o("author_id", "Author", "res.partner"),
            Field("partner_ids", "many2many", "Recipients", relation="res.partner"),
            _f("date", "datetime", "Date")], {"order": "id desc", "rec_name": "subject"}),
        ("mail.activity.type", "Activity Type", [_f("name", "char", "Name", required=True)], {}),
        ("mail.activity", "Activity", [
            _f("res_model", "char", "Related Document Model", required=True),
            _f("res_id", "many2one_reference", "Related Document ID", required=True),
            _m2o("activity_type_id", "Activity Type", "mail.activity.type"),
            _f("summary", "char", "Summary"), _f("note", "html", "Note"),
            _f("date_deadline", "date", "Due Date", required=True),
            _m2o("user_id", "Assigned to", "res.users")],
            {"order": "date_deadline, id", "rec_name": "summary"}),
        ("res.company", "Companies", [
            _f("name", "char", "Company Name", required=True), *company_sms], {}),
        ("ir.module.module", "Module", [
            _f("name", "char", "Technical Name", required=True),
            _f("shortdesc", "char", "Module Name"),
            _sel("state", "Status", (("uninstalled", "Not Installed"),
                                     ("installed", "Installed"),
                                     ("to upgrade", "To be upgraded")), default="uninstalled")],
            {"order": "name", "writable": False}),
        ("res.users.apikeys", "Users API Keys", [
            _f("name", "char", "Description", required=True),
            _m2o("user_id", "User", "res.users"),
            _f("scope", "char", "Scope"),
            *([_f("expiration_date", "datetime", "Expiration Date")]
              if version.api_key_max_days else [])],
            {"writable": False}),
        ("ir.model", "Models", [
            _f("model", "char", "Model", required=True), _f("name", "char", "Model Description")],
            {"order": "model", "writable": False}),
        ("ir.model.data", "Model Data", [
            _f("name", "char", "External Identifier", required=True),
            _f("module", "char", "Module", required=True),
            _f("model", "char", "Model Name", required=True),
            _f("res_id", "many2one_reference", "Record ID"),
            _f("complete_name", "char", "Complete ID")],
            {"order": "module, model, name", "rec_name": "complete_name", "writable": False}),
    ]  # fmt: skip


# addons/base_automation/models/base_automation.py (17.0-19.0): a rule's triggers; the
# sandbox fires on_create_or_write, on_create, on_write and on_state_set (the rest never).
AUTOMATION_TRIGGERS = (
    ("on_stage_set", "Stage is set to"), ("on_user_set", "User is set"),
    ("on_tag_set", "Tag is added"), ("on_state_set", "State is set to"),
    ("on_priority_set", "Priority is set to"), ("on_archive", "On archived"),
    ("on_unarchive", "On unarchived"), ("on_create_or_write", "On save"),
    ("on_create", "On creation"), ("on_write", "On update"), ("on_unlink", "On deletion"),
    ("on_change", "On UI change"), ("on_time", "Based on date field"),
    ("on_time_created", "After creation"), ("on_time_updated", "After last update"),
    ("on_message_received", "On incoming message"), ("on_message_sent", "On outgoing message"),
    ("on_webhook", "On webhook"),
)  # fmt: skip
SERVER_ACTION_STATES = (
    ("object_write", "Update Record"), ("object_create", "Create Record"),
    ("code", "Execute Code"), ("webhook", "Send Webhook Notification"),
    ("multi", "Execute Existing Actions"),
)  # fmt: skip


def _automation_models() -> list[tuple[str, str, list[Field], dict[str, Any]]]:
    """Automation rules and their server actions, as base_automation (17.0+) and base's
    odoo/addons/base/models/ir_actions.py (17.0+: state 'webhook', webhook_url,
    webhook_field_ids) define them; fields as ir.model.fields rows."""
    return [
        ("ir.model.fields", "Fields", [
            _f("name", "char", "Field Name", required=True),
            _f("model", "char", "Model Name", required=True),
            _m2o("model_id", "Model", "ir.model"),
            _f("field_description", "char", "Field Label"),
            _f("ttype", "char", "Field Type")],
            {"order": "model, name", "writable": False}),
        ("base.automation", "Automation Rule", [
            _f("name", "char", "Automation Rule Name", required=True),
            _m2o("model_id", "Model", "ir.model", required=True),
            _f("model_name", "char", "Model Name", related=("model_id", "model")),
            _sel("trigger", "Trigger", AUTOMATION_TRIGGERS, required=True),
            Field("trigger_field_ids", "many2many", "Trigger Fields", relation="ir.model.fields"),
            _f("filter_domain", "char", "Apply on"),
            _f("active", "boolean", "Active", default=True),
            _o2m("action_server_ids", "Actions", "ir.actions.server", "base_automation_id")],
            {"admin_only": True}),
        ("ir.actions.server", "Server Action", [
            _f("name", "char", "Action Name", required=True),
            _m2o("model_id", "Model", "ir.model", required=True),
            _f("model_name", "char", "Model Name", related=("model_id", "model")),
            _sel("usage", "Usage", (("ir_actions_server", "Server Action"),
                                    ("ir_cron", "Scheduled Action"),
                                    ("base_automation", "Automation Rule")),
                 default="ir_actions_server"),
            _sel("state", "Type", SERVER_ACTION_STATES, default="object_write", required=True),
            _m2o("base_automation_id", "Automation Rule", "base.automation"),
            _f("webhook_url", "char", "Webhook URL"),
            Field("webhook_field_ids", "many2many", "Webhook Fields",
                  relation="ir.model.fields")],
            {}),
    ]  # fmt: skip


def _return_models(version: OdooVersion) -> list[tuple[str, str, list[Field], dict[str, Any]]]:
    """The return wizard and scrap orders (addons/stock/wizard/stock_picking_return.py,
    addons/stock/models/stock_scrap.py). 16.0/17.0: the wizard has a ``location_id``
    (return location) and its lines ``to_refund``; 18.0+ dropped both. A scrap order
    keeps its move as ``move_id`` in 16.0, ``move_ids`` from 17.0."""
    old_wizard = version.major <= 17
    scrap_move = (
        [_m2o("move_id", "Scrap Move", "stock.move")]
        if version.major == 16
        else [_o2m("move_ids", "Scrap Moves", "stock.move", "scrap_id")]
    )
    return [
        ("stock.return.picking", "Return Picking", [
            _m2o("picking_id", "Picking", "stock.picking"),
            _o2m("product_return_moves", "Moves", "stock.return.picking.line", "wizard_id"),
            *([_m2o("location_id", "Return Location", "stock.location")] if old_wizard else [])],
            {"rec_name": "picking_id"}),
        ("stock.return.picking.line", "Return Picking Line", [
            _m2o("product_id", "Product", "product.product", required=True),
            _f("quantity", "float", "Quantity", required=True,
               default=None if old_wizard else 1.0),
            _m2o("uom_id", "Unit of Measure", "uom.uom", related=("product_id", "uom_id")),
            _m2o("wizard_id", "Wizard", "stock.return.picking"),
            _m2o("move_id", "Move", "stock.move"),
            *([_f("to_refund", "boolean", "Update quantities on SO/PO", default=True)]
              if old_wizard else [])],
            {"rec_name": "product_id"}),
        ("stock.scrap", "Scrap", [
            _f("name", "char", "Reference", default="New"),
            _f("origin", "char", "Source Document"),
            _m2o("product_id", "Product", "product.product", required=True),
            _m2o("product_uom_id", "Unit of Measure", "uom.uom"),
            _f("scrap_qty", "float", "Quantity", default=1.0, required=True),
            _m2o("location_id", "Source Location", "stock.location", required=True),
            _m2o("scrap_location_id", "Scrap Location", "stock.location", required=True),
            _m2o("picking_id", "Picking", "stock.picking"),
            *scrap_move,
            _sel("state", "Status", (("draft", "Draft"), ("done", "Done")), default="draft"),
            _f("date_done", "datetime", "Date")], {"order": "id desc"}),
    ]  # fmt: skip


MOVE_TYPES = (
    ("entry", "Journal Entry"), ("out_invoice", "Customer Invoice"),
    ("out_refund", "Customer Credit Note"), ("in_invoice", "Vendor Bill"),
    ("in_refund", "Vendor Credit Note"), ("out_receipt", "Sales Receipt"),
    ("in_receipt", "Purchase Receipt"),
)  # fmt: skip
PAYMENT_STATES = (
    ("not_paid", "Not Paid"), ("in_payment", "In Payment"), ("paid", "Paid"),
    ("partial", "Partially Paid"), ("reversed", "Reversed"),
    ("invoicing_legacy", "Invoicing App Legacy"),
)  # fmt: skip


def _accounting_models(version: OdooVersion) -> list[tuple[str, str, list[Field], dict[str, Any]]]:
    """Customer invoices, credit notes and the reversal wizard (addons/account/models/
    account_move.py, addons/account/wizard/account_move_reversal.py). Taxes are left out:
    the totals are the sum of the lines. 16.0's wizard chooses a ``refund_method``; 17.0+
    has ``refund_moves`` / ``modify_moves`` instead and requires its ``journal_id``. The
    reversals of a move are ``reversal_move_id`` up to 17.0, ``reversal_move_ids`` from 18.0."""
    reversals = "reversal_move_ids" if version.major >= 18 else "reversal_move_id"
    refund_method = (
        [_sel("refund_method", "Credit Method", (
            ("refund", "Partial Refund"), ("cancel", "Full Refund"),
            ("modify", "Full refund and new draft invoice")), default="refund", required=True)]
        if version.major == 16
        else []
    )  # fmt: skip
    return [
        ("account.journal", "Journal", [
            _f("name", "char", "Journal Name", required=True),
            _f("code", "char", "Short Code", required=True),
            _sel("type", "Type", (("sale", "Sales"), ("purchase", "Purchase"), ("cash", "Cash"),
                                  ("bank", "Bank"), ("general", "Miscellaneous")),
                 required=True),
            _f("refund_sequence", "boolean", "Dedicated Credit Note Sequence", default=True)],
            {}),
        ("account.move", "Journal Entry", [
            _f("name", "char", "Number", default="/"),
            _sel("move_type", "Type", MOVE_TYPES, default="entry", required=True),
            _sel("state", "Status", (("draft", "Draft"), ("posted", "Posted"),
                                     ("cancel", "Cancelled")), default="draft", required=True),
            _m2o("partner_id", "Partner", "res.partner"),
            _m2o("journal_id", "Journal", "account.journal", required=True),
            _f("date", "date", "Date"),
            _f("invoice_date", "date", "Invoice/Bill Date"),
            _f("ref", "char", "Reference"),
            _f("invoice_origin", "char", "Origin"),
            _m2o("reversed_entry_id", "Reversal of", "account.move"),
            _o2m(reversals, "Reversal Moves", "account.move", "reversed_entry_id"),
            _sel("payment_state", "Payment Status", PAYMENT_STATES, default="not_paid"),
            _o2m("invoice_line_ids", "Invoice lines", "account.move.line", "move_id"),
            _f("amount_untaxed", "float", "Untaxed Amount", computed=True),
            _f("amount_tax", "float", "Tax", computed=True),
            _f("amount_total", "float", "Total", computed=True),
            _f("amount_residual", "float", "Amount Due", computed=True)],
            {"order": "date desc, name desc, id desc"}),
        ("account.move.line", "Journal Item", [
            _m2o("move_id", "Journal Entry", "account.move", required=True),
            _m2o("product_id", "Product", "product.product"),
            _f("name", "char", "Label"),
            _f("quantity", "float", "Quantity", default=1.0),
            _f("price_unit", "float", "Unit Price", default=0.0),
            _f("price_subtotal", "float", "Subtotal", computed=True),
            Field("sale_line_ids", "many2many", "Sales Order Lines",
                  relation="sale.order.line")], {"order": "id", "rec_name": "name"}),
        ("account.move.reversal", "Account Move Reversal", [
            Field("move_ids", "many2many", "Journal Entry", relation="account.move"),
            Field("new_move_ids", "many2many", "New Journal Entries", relation="account.move"),
            _f("date", "date", "Reversal date"),
            _f("reason", "char", "Reason"),
            *refund_method,
            _m2o("journal_id", "Use Specific Journal", "account.journal",
                 required=version.major >= 17)], {"rec_name": "reason"}),
    ]  # fmt: skip


def _magic_fields() -> list[Field]:
    return [
        _f("id", "integer", "ID", computed=True),
        _f("display_name", "char", "Display Name", computed=True),
        _f("create_date", "datetime", "Created on"),
        _m2o("create_uid", "Created by", "res.users"),
        _f("write_date", "datetime", "Last Updated on"),
        _m2o("write_uid", "Last Updated by", "res.users"),
    ]


# The fields the delivery module (``delivery`` up to 17.0, ``stock_delivery`` from
# 18.0) adds; without it Odoo answers "Invalid field" for each.
DELIVERY_FIELDS = {
    "stock.picking": ("carrier_id", "carrier_tracking_ref", "carrier_price", "weight",
                      "shipping_weight"),
    "sale.order": ("carrier_id",),
}  # fmt: skip


def build_models(version: OdooVersion, *, with_delivery: bool = True) -> dict[str, ModelSpec]:
    """Every simulated model of this Odoo version, by technical name.

    ``with_delivery=False``: a database where the delivery module is not installed.
    """
    models: dict[str, ModelSpec] = {}
    table = _model_table(version)
    if version.has_webhooks:  # 16.0 has no webhook action: nothing to set up there
        table += _automation_models()
    table += _return_models(version) + _accounting_models(version)
    for name, description, own_fields, options in table:
        dropped = () if with_delivery else DELIVERY_FIELDS.get(name, ())
        fields = {f.name: f for f in [*_magic_fields(), *own_fields] if f.name not in dropped}
        models[name] = ModelSpec(name=name, description=description, fields=fields, **options)
    return models
