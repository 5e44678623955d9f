"""The calling environment of a model method: who calls, with which context, on which records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from waybill_sandboxes.odoo.exceptions import value_error
from waybill_sandboxes.odoo.registry import Registry


@dataclass(frozen=True)
class Env:
    """The registry, the calling user id and the request context (``lang``, ``tz``, flags)."""

    registry: Registry
    uid: int
    context: Mapping[str, Any] = field(default_factory=dict)
    user_can_write: bool = True  # the caller's groups allow changes (access rights)
    user_is_admin: bool = False  # in Settings / Administration (admin-only models)


@dataclass(frozen=True)
class Records:
    """A recordset: a model and some of its ids, bound to an environment.

    Model-level methods (Odoo's ``@api.model``) receive an empty recordset.
    """

    env: Env
    model: str
    ids: tuple[int, ...] = ()

    def browse(self, ids: list[int] | tuple[int, ...]) -> Records:
        """The same model with other ids."""
        return Records(self.env, self.model, tuple(ids))

    def ensure_one(self) -> int:
        """The single id of this recordset, or Odoo's "Expected singleton" error."""
        if len(self.ids) != 1:
            shown = ", ".join(str(i) for i in self.ids)
            raise value_error(f"Expected singleton: {self.model}({shown},)")
        return self.ids[0]

    def value(self, record_id: int, name: str) -> Any:
        """A raw field value of one of the records."""
        return self.env.registry.value(self.model, record_id, name)


def xmlid_to_record(registry: Registry, xmlid: str) -> tuple[str, int]:
    """``"mail.mt_note"`` → ``("mail.message.subtype", 1)``, or Odoo's ValueError."""
    module, _, name = xmlid.partition(".")
    ids = registry.search("ir.model.data", [("module", "=", module), ("name", "=", name)])
    if not name or not ids:
        raise value_error(f"External ID not found in the system: {xmlid}")
    return (
        registry.value("ir.model.data", ids[0], "model"),
        registry.value("ir.model.data", ids[0], "res_id"),
    )


def add_xmlid(registry: Registry, xmlid: str, model: str, res_id: int) -> None:
    """Register an external id for a record (done by the seed, as module data would)."""
    module, _, name = xmlid.partition(".")
    registry.create(
        "ir.model.data",
        [
            {
                "module": module,
                "name": name,
                "model": model,
                "res_id": res_id,
                "complete_name": xmlid,
            }
        ],
        uid=1,
    )
