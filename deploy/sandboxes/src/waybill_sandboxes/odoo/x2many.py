"""Odoo's x2many write commands: ``(0, 0, vals)`` create, ``(1, id, vals)`` update,
``(2, id)`` delete, ``(3, id)`` unlink, ``(4, id)`` link, ``(5,)`` clear,
``(6, 0, ids)`` replace. A bare list of ids replaces the set, as Odoo accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from waybill_sandboxes.odoo.exceptions import value_error
from waybill_sandboxes.odoo.schema import Field, ModelSpec

if TYPE_CHECKING:
    from waybill_sandboxes.odoo.registry import Registry


def apply_commands(
    registry: Registry, spec: ModelSpec, record_id: int, field: Field, commands: Any, uid: int
) -> None:
    """Apply the commands to ``field`` of one record."""
    comodel = field.relation or ""
    where = f"{spec.name}.{field.name}"
    if commands is False or commands is None:
        commands = [(5, 0, 0)]
    if not isinstance(commands, list | tuple):
        raise value_error(f"Invalid value for {where}: {commands!r}")
    if commands and all(isinstance(c, int) and not isinstance(c, bool) for c in commands):
        commands = [(6, 0, list(commands))]
    current = list(registry.value(spec.name, record_id, field.name))
    for command in commands:
        if not isinstance(command, list | tuple) or not command:
            raise value_error(f"Invalid command {command!r} for {where}")
        code, target, payload = (*command, 0, 0)[:3]
        if code == 0:
            link = {} if field.type == "many2many" else _inverse_values(spec, field, record_id)
            current.extend(registry.create(comodel, [{**(payload or {}), **link}], uid))
        elif code == 1:
            registry.write(comodel, [target], payload or {}, uid)
        elif code == 2:
            registry.unlink(comodel, [target], uid)
            current = [i for i in current if i != target]
        elif code == 3:
            current = [i for i in current if i != target]
        elif code == 4:
            registry.ensure_exist(comodel, [target], uid)
            current = current if target in current else [*current, target]
        elif code == 5:
            current = []
        elif code == 6:
            ids = list(payload or [])
            registry.ensure_exist(comodel, ids, uid)
            current = ids
        else:
            raise value_error(f"Invalid command {command!r} for {where}")
    if field.type == "many2many":
        registry.store(spec.name, record_id, {field.name: current})
    else:
        _relink(registry, spec, record_id, field, current, uid)


def _inverse_values(spec: ModelSpec, field: Field, record_id: int) -> dict[str, Any]:
    values: dict[str, Any] = {field.inverse or "": record_id}
    if field.model_field:
        values[field.model_field] = spec.name
    return values


def _relink(
    registry: Registry, spec: ModelSpec, record_id: int, field: Field, wanted: list[int], uid: int
) -> None:
    comodel = field.relation or ""
    inverse = field.inverse or ""
    for child in registry.one2many_ids(spec.name, record_id, field):
        if child not in wanted:
            # A child that cannot exist without its parent is deleted, as Odoo's cascade does.
            if registry.spec(comodel).fields[inverse].required:
                registry.unlink(comodel, [child], uid)
            else:
                registry.store(comodel, child, {inverse: False})
    for child in wanted:
        registry.store(comodel, child, _inverse_values(spec, field, record_id))
