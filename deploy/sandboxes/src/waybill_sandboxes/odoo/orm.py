"""The generic model methods every Odoo model has, with Odoo's own signatures.

Their parameter names and defaults are what JSON-2 clients send as keys and
what the API documentation endpoint publishes, so they match Odoo's exactly.
"""

from __future__ import annotations

from typing import Any

from waybill_sandboxes.odoo.env import Records
from waybill_sandboxes.odoo.exceptions import AccessError, value_error
from waybill_sandboxes.odoo.registry import Registry
from waybill_sandboxes.odoo.schema import X2MANY_TYPES


def search(
    self: Records,
    domain: Any,
    offset: int = 0,
    limit: int | None = None,
    order: str | None = None,
) -> list[int]:
    """Ids of the records matching the domain."""
    return self.env.registry.search(
        self.model, domain, offset=offset, limit=limit, order=order, context=dict(self.env.context)
    )


def search_count(self: Records, domain: Any, limit: int | None = None) -> int:
    """How many records match the domain (at most ``limit``)."""
    return len(search(self, domain, limit=limit))


def read(self: Records, fields: Any = None, load: Any = "_classic_read") -> Any:
    """Field values of the records; many2one as ``[id, name]`` unless ``load`` says otherwise."""
    if fields not in (None, False) and not isinstance(fields, list | tuple):
        raise value_error(f"Invalid fields {fields!r}: expected a list of field names")
    return self.env.registry.read(self.model, list(self.ids), list(fields or []), load=load)


def search_read(
    self: Records,
    domain: Any = None,
    fields: list[str] | None = None,
    offset: int = 0,
    limit: int | None = None,
    order: str | None = None,
    **read_kwargs: Any,
) -> Any:
    """``search`` then ``read`` in one call."""
    unknown = set(read_kwargs) - {"load"}
    if unknown:
        raise value_error(f"search_read() got unexpected arguments: {sorted(unknown)}")
    ids = search(self, domain or [], offset=offset, limit=limit, order=order)
    return read(self.browse(ids), fields, load=read_kwargs.get("load", "_classic_read"))


def web_read(self: Records, specification: Any) -> list[dict[str, Any]]:
    """17.0+ ``web_read`` (odoo/models.py): the records read with ``load=None`` for the
    fields the specification names, and each relational field whose spec has ``fields``
    read the same way in its place (a many2one as a dict, ``False`` when empty; an
    x2many as a list of dicts in the field's order). The web client's way of reading a
    record with its related records in one call."""
    return _web_read(self.env.registry, self.model, list(self.ids), specification)


def web_search_read(
    self: Records,
    domain: Any,
    specification: Any,
    offset: int = 0,
    limit: int | None = None,
    order: str | None = None,
    count_limit: int | None = None,
) -> dict[str, Any]:
    """17.0+ ``web_search_read``: ``search`` then :func:`web_read`, answered as
    ``{"length": ..., "records": [...]}`` (``length`` counted again only when the page
    is full, as ``_format_web_search_read_results`` does)."""
    ids = search(self, domain or [], offset=offset, limit=limit, order=order)
    records = _web_read(self.env.registry, self.model, ids, specification)
    length = offset + len(records)
    if records and limit and len(records) == limit and not (count_limit and count_limit <= length):
        length = search_count(self, domain or [], limit=count_limit)
    return {"length": length, "records": records}


def _web_read(
    registry: Registry, model: str, ids: list[int], specification: Any
) -> list[dict[str, Any]]:
    if not isinstance(specification, dict):
        raise value_error(f"Invalid specification {specification!r}: expected a dictionary")
    names = [name for name in specification if name != "id"]
    if names:
        rows = registry.read(model, ids, names, load=None)
    else:
        rows = [{"id": record_id} for record_id in registry.exists(model, ids)]
    for name in names:
        nested = specification[name]
        if not isinstance(nested, dict) or "fields" not in nested:
            continue
        field = registry.field(model, name)
        if field.type == "many2one":
            linked = sorted({row[name] for row in rows if row[name]})
        elif field.type in X2MANY_TYPES:
            linked = sorted({i for row in rows for i in row[name]})
        else:
            continue
        comodel = field.relation or ""
        read = {row["id"]: row for row in _web_read(registry, comodel, linked, nested["fields"])}
        for row in rows:
            if field.type == "many2one":
                row[name] = read.get(row[name], {"id": row[name]}) if row[name] else False
            else:
                row[name] = [read.get(i) or {"id": i} for i in row[name]]
    return rows


def create(self: Records, vals_list: Any) -> int | list[int]:
    """Create one record from a dict (returns its id) or several from a list (returns ids)."""
    single = isinstance(vals_list, dict)
    if not single and not isinstance(vals_list, list | tuple):
        raise value_error(f"Invalid values {vals_list!r}: expected a dictionary or a list")
    rows = [vals_list] if single else list(vals_list)
    ids = self.env.registry.create(self.model, rows, uid=self.env.uid)
    return ids[0] if single else ids


def write(self: Records, vals: dict[str, Any]) -> bool:
    """Update the records; returns True."""
    self.env.registry.write(self.model, list(self.ids), vals, uid=self.env.uid)
    return True


def unlink(self: Records) -> bool:
    """Delete the records; returns True."""
    self.env.registry.unlink(self.model, list(self.ids), uid=self.env.uid)
    return True


def fields_get(
    self: Records, allfields: list[str] | None = None, attributes: list[str] | None = None
) -> dict[str, Any]:
    """Field descriptions: type, string, relation, selection, ..."""
    spec = self.env.registry.spec(self.model)
    result: dict[str, Any] = {}
    for name, field in spec.fields.items():
        if allfields and name not in allfields:
            continue
        info = field.describe()
        if attributes:
            info = {key: value for key, value in info.items() if key in attributes}
        result[name] = info
    return result


def default_get(self: Records, fields_list: list[str]) -> dict[str, Any]:
    """Default values for a new record."""
    spec = self.env.registry.spec(self.model)
    if not isinstance(fields_list, list | tuple):
        raise value_error(f"Invalid fields {fields_list!r}: expected a list of field names")
    return {
        name: spec.fields[name].default
        for name in fields_list
        if name in spec.fields and spec.fields[name].default is not None
    }


def name_search(
    self: Records,
    name: str = "",
    domain: Any = None,
    operator: str = "ilike",
    limit: int = 100,
) -> list[list[Any]]:
    """``[[id, display_name], ...]`` of records whose name matches."""
    terms = list(domain or [])
    if name:
        terms.append(("display_name", operator, name))
    ids = search(self, terms, limit=limit)
    registry = self.env.registry
    return [[i, registry.display_name(self.model, i)] for i in ids]


def _allowed(self: Records, operation: str) -> bool:
    if operation not in ("read", "write", "create", "unlink"):
        raise value_error(f"Invalid access mode {operation!r}")
    spec = self.env.registry.spec(self.model)
    if spec.admin_only and not self.env.user_is_admin:
        return False
    if operation == "read":
        return True
    return bool(self.env.user_can_write and spec.writable)


def check_access_rights(self: Records, operation: str, raise_exception: bool = True) -> bool:
    """``check_access_rights`` (16.0-18.0; 18.0 deprecates it for ``has_access``): whether
    the caller's groups allow ``operation`` on the model; AccessError unless told not to
    raise (odoo/models.py)."""
    allowed = _allowed(self, operation)
    if not allowed and raise_exception:
        raise AccessError(f"You are not allowed to {operation} '{self.model}' records.")
    return allowed


def has_access(self: Records, operation: str) -> bool:
    """``has_access`` (18.0+, odoo/models.py): the same question, never raising."""
    return _allowed(self, operation)
