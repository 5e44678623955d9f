"""Which methods each model exposes, and calling them the way Odoo's ``call_kw`` does.

One table serves every protocol: JSON-RPC and XML-RPC pass positional
``args`` (the record ids first for record methods) and ``kwargs``; JSON-2
passes ``ids`` and named arguments only. Signatures are checked with
:mod:`inspect` against the real Odoo signatures, and write permission is
checked here, once, for every protocol.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from waybill_sandboxes.odoo import accounting, inventory, mail, orm, returns, stock
from waybill_sandboxes.odoo.env import Env, Records
from waybill_sandboxes.odoo.exceptions import (
    AccessError,
    InternalError,
    UserError,
    WrongArguments,
    value_error,
)
from waybill_sandboxes.odoo.registry import Registry
from waybill_sandboxes.odoo.users import Credential


@dataclass(frozen=True)
class Method:
    """A public model method: its implementation and how it is called."""

    name: str
    function: Callable[..., Any]
    model_level: bool = False  # Odoo's @api.model: no record ids
    access: str | None = None  # "create", "write" or "unlink" when it changes data
    models: frozenset[str] | None = None  # None: every model has it
    versions: frozenset[int] | None = None  # None: every Odoo version has it
    # Returns records. JSON-RPC / XML-RPC get one id for one record (Odoo's
    # @api.returns downgrade); JSON-2 always gets the list of ids.
    returns_records: bool = False
    # Returns a recordset without ``@api.returns`` (``activity_schedule``): up to 18.0
    # the RPC layer's JSON fallback (odoo/tools/json.py, ``str()``) sends it as the text
    # ``"mail.activity(5,)"``; 19.0 sends the ids. The sandbox does the same over XML-RPC.
    recordset_as_text: bool = False

    def parameters(self) -> list[inspect.Parameter]:
        """The parameters after the recordset, as a client passes them."""
        return list(inspect.signature(self.function).parameters.values())[1:]


_CHATTER_MODELS = frozenset({"sale.order", "stock.picking"})

METHODS: tuple[Method, ...] = (
    Method("search", orm.search, model_level=True, returns_records=True),
    Method("search_read", orm.search_read, model_level=True),
    Method("search_count", orm.search_count, model_level=True),
    Method("name_search", orm.name_search, model_level=True),
    Method("read", orm.read),
    # The web client's reads with related records (odoo/models.py 17.0+; 16's
    # web_search_read takes a field list instead and is not simulated).
    Method("web_read", orm.web_read, versions=frozenset({17, 18, 19})),
    Method("web_search_read", orm.web_search_read, model_level=True,
           versions=frozenset({17, 18, 19})),
    Method("create", orm.create, model_level=True, access="create", returns_records=True),
    Method("write", orm.write, access="write"),
    Method("unlink", orm.unlink, access="unlink"),
    Method("fields_get", orm.fields_get, model_level=True),
    Method("default_get", orm.default_get, model_level=True),
    Method("action_confirm", stock.action_confirm, access="write",
           models=frozenset({"sale.order"})),
    Method("action_cancel", stock.cancel_orders, access="write",
           models=frozenset({"sale.order"})),
    Method("action_lock", stock.lock_orders, access="write", models=frozenset({"sale.order"}),
           versions=frozenset({17, 18, 19})),
    Method("action_done", stock.finish_orders, access="write", models=frozenset({"sale.order"}),
           versions=frozenset({16})),
    Method("action_unlock", stock.unlock_orders, access="write",
           models=frozenset({"sale.order"})),
    Method("action_cancel", stock.cancel_pickings, access="write",
           models=frozenset({"stock.picking"})),
    Method("action_assign", stock.action_assign, access="write",
           models=frozenset({"stock.picking"})),
    Method("button_validate", stock.button_validate, access="write",
           models=frozenset({"stock.picking"})),
    Method("message_post", mail.message_post, access="write", models=_CHATTER_MODELS,
           returns_records=True),
    Method("activity_schedule", mail.activity_schedule, access="write", models=_CHATTER_MODELS,
           recordset_as_text=True),
    # stock.quant in inventory mode (waybill_sandboxes.odoo.inventory); listed after the
    # generic create and write, which they replace on that model.
    Method("create", inventory.create_quants, model_level=True, access="create",
           returns_records=True, models=frozenset({"stock.quant"})),
    Method("write", inventory.write_quants, access="write", models=frozenset({"stock.quant"})),
    Method("action_apply_inventory", inventory.action_apply_inventory, access="write",
           models=frozenset({"stock.quant"})),
    # Returns (waybill_sandboxes.odoo.returns): 18.0 renamed create_returns.
    Method("create_returns", returns.create_returns, access="write",
           models=frozenset({"stock.return.picking"}), versions=frozenset({16, 17})),
    Method("action_create_returns", returns.create_returns, access="write",
           models=frozenset({"stock.return.picking"}), versions=frozenset({18, 19})),
    Method("action_validate", returns.scrap_validate, access="write",
           models=frozenset({"stock.scrap"})),
    # Invoices and credit notes (waybill_sandboxes.odoo.accounting).
    Method("action_post", accounting.action_post, access="write",
           models=frozenset({"account.move"})),
    Method("reverse_moves", accounting.reverse_moves_16, access="write",
           models=frozenset({"account.move.reversal"}), versions=frozenset({16})),
    Method("reverse_moves", accounting.reverse_moves_17, access="write",
           models=frozenset({"account.move.reversal"}), versions=frozenset({17, 18, 19})),
    Method("refund_moves", accounting.refund_moves, access="write",
           models=frozenset({"account.move.reversal"}), versions=frozenset({17, 18, 19})),
    Method("modify_moves", accounting.modify_moves, access="write",
           models=frozenset({"account.move.reversal"}), versions=frozenset({17, 18, 19})),
    Method("check_access_rights", orm.check_access_rights, model_level=True,
           versions=frozenset({16, 17, 18})),
    Method("has_access", orm.has_access, versions=frozenset({18, 19})),
    Method("context_get", mail.context_get, model_level=True, models=frozenset({"res.users"})),
    Method("check_object_reference", mail.check_object_reference, model_level=True,
           models=frozenset({"ir.model.data"})),
)  # fmt: skip

_ACCESS_VERBS = {"create": "create", "write": "modify", "unlink": "delete"}
# Asking whether an operation is allowed is itself allowed (they answer False).
_ACCESS_QUESTIONS = frozenset({"check_access_rights", "has_access"})


def methods_of(model: str, version: int) -> dict[str, Method]:
    """The public methods of a model in an Odoo version, by name."""
    found: dict[str, Method] = {}
    for method in METHODS:
        if (method.models is None or model in method.models) and (
            method.versions is None or version in method.versions
        ):
            found[method.name] = method
    return found


def _method(registry: Registry, model: str, name: str) -> Method:
    if not isinstance(name, str) or name.startswith("_"):
        raise AccessError(f"Private methods (such as {model}.{name}) cannot be called remotely.")
    method = methods_of(model, registry.version.major).get(name)
    if method is None:
        raise InternalError(
            "builtins.AttributeError", f"The method '{name}' does not exist on the model '{model}'"
        )
    return method


def _check_access(registry: Registry, user: Credential, model: str, method: Method) -> None:
    spec = registry.spec(model)
    if spec.admin_only and not user.administrator and method.name not in _ACCESS_QUESTIONS:
        # odoo/addons/base/models/ir_model.py: the message of a missing access right
        raise AccessError(
            f"You are not allowed to access '{spec.description}' ({model}) records.\n\n"
            "This operation is allowed for the following groups:\n"
            "\t- Administration/Settings\n\n"
            "Contact your administrator to request access if necessary."
        )
    if method.access and (not user.can_write or not spec.writable):
        verb = _ACCESS_VERBS[method.access]
        raise AccessError(
            f"You are not allowed to {verb} '{spec.description}' ({model}) records.\n\n"
            "This operation is allowed for the following groups:\n\t- Inventory/User\n\n"
            "Contact your administrator to request access if necessary."
        )


def _record_ids(raw: Any) -> tuple[int, ...]:
    values = raw if isinstance(raw, list | tuple) else [raw]
    if raw is False or raw is None:
        values = []
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise value_error(f"Invalid record ids {raw!r}: expected integers")
    return tuple(values)


def _context(raw: Any) -> dict[str, Any]:
    if raw is None or raw is False:
        return {}
    if not isinstance(raw, Mapping):
        raise value_error(f"Invalid context {raw!r}: expected a dictionary")
    return dict(raw)


def _bind(
    method: Method, model: str, records: Records, args: list[Any], kwargs: dict[str, Any]
) -> None:
    try:
        inspect.signature(method.function).bind(records, *args, **kwargs)
    except TypeError as wrong:
        raise WrongArguments(f"{model}.{method.name}() {wrong}") from wrong


def _to_wire(result: Any) -> Any:
    # A recordset travels as its ids, as Odoo's RPC layer sends it.
    return list(result.ids) if isinstance(result, Records) else result


def call_kw(
    registry: Registry,
    user: Credential,
    model: str,
    method_name: str,
    args: Any,
    kwargs: Any = None,
) -> Any:
    """Odoo's ``execute_kw`` / ``call_kw``: positional ``args`` (ids first) and ``kwargs``."""
    if not isinstance(model, str) or model not in registry.models:
        raise UserError(f"Object {model} doesn't exist")
    method = _method(registry, model, method_name)
    if not isinstance(args, list | tuple):
        raise WrongArguments(f"{model}.{method_name}(): args must be a list, not {args!r}")
    named = dict(kwargs or {}) if isinstance(kwargs, Mapping) or not kwargs else None
    if named is None:
        raise WrongArguments(f"{model}.{method_name}(): kwargs must be a dictionary")
    env = Env(
        registry,
        user.uid,
        _context(named.pop("context", None)),
        user.can_write,
        user.administrator,
    )
    positional = list(args)
    if method.name == "create" and not positional and registry.version.major <= 18:
        # odoo/api.py _call_kw_model_create (16.0-18.0) answers ``result.id if
        # isinstance(args[0], Mapping) else result.ids``: values passed only as the keyword
        # ``vals_list`` end in an IndexError (the record is not kept: the call fails).
        raise InternalError("builtins.IndexError", "tuple index out of range")
    if method.model_level:
        records = Records(env, model)
    else:
        if not positional:
            raise WrongArguments(f"{model}.{method_name}() missing the record ids")
        records = Records(env, model, _record_ids(positional.pop(0)))
    _bind(method, model, records, positional, named)
    _check_access(registry, user, model, method)
    with registry.transaction(f"{model}.{method_name}"):
        result = method.function(records, *positional, **named)
    if (
        method.recordset_as_text
        and isinstance(result, Records)
        and not registry.version.recordsets_as_ids
    ):
        return f"{result.model}({''.join(f'{i},' for i in result.ids)})"
    return _to_wire(result)


class NotFound(Exception):
    """The JSON-2 API answers 404: unknown model or method."""


def call_json2(
    registry: Registry,
    user: Credential,
    model: str,
    method_name: str,
    ids: Any,
    context: Any,
    kwargs: dict[str, Any],
) -> Any:
    """The JSON-2 call: ``ids``, ``context`` and named arguments only.

    Raises :class:`NotFound` for an unknown model or method and
    :class:`WrongArguments` when the arguments do not fit (both before
    anything runs), then whatever the method raises.
    """
    if model not in registry.models:
        raise NotFound(f"the model {model!r} does not exist")
    try:
        method = _method(registry, model, method_name)
    except InternalError as missing:
        raise NotFound(missing.message) from missing
    record_ids = _record_ids(ids or [])
    if method.model_level and record_ids:
        raise WrongArguments(f"cannot call {model}.{method_name} with ids")
    env = Env(registry, user.uid, _context(context), user.can_write, user.administrator)
    records = Records(env, model, record_ids)
    _bind(method, model, records, [], kwargs)
    _check_access(registry, user, model, method)
    with registry.transaction(f"{model}.{method_name}"):
        result = _to_wire(method.function(records, **kwargs))
    if method.returns_records and isinstance(result, int) and not isinstance(result, bool):
        return [result]
    return result


def describe_methods(model: str, version: int) -> dict[str, Any]:
    """Method signatures as Odoo 19's ``/doc-bearer/<model>.json`` publishes them."""
    described: dict[str, Any] = {}
    for name, method in sorted(methods_of(model, version).items()):
        parameters: dict[str, Any] = {}
        for parameter in method.parameters():
            info: dict[str, Any] = {}
            if parameter.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
                info["kind"] = parameter.kind.name
            if parameter.default is not inspect.Parameter.empty:
                info["default"] = parameter.default
            parameters[parameter.name] = info
        signature = ", ".join(
            p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
            for p in method.parameters()
        )
        entry: dict[str, Any] = {
            "signature": f"({signature})",
            "parameters": parameters,
            "model": model,
            "module": "core" if method.models is None else model.partition(".")[0],
        }
        if method.model_level:
            entry["api"] = ["model"]
        described[name] = entry
    return described
