"""An in-memory Odoo database: records, the generic ORM operations, change events.

The registry knows fields and records but no business rules and no access
rights (the method table and the business module add those). Values are
kept the way Odoo reads them back: many2one as an id or ``False``, dates as
``"YYYY-MM-DD"``, datetimes as ``"YYYY-MM-DD HH:MM:SS"``, empty as ``False``.
Every write stamps ``write_date``, which is what a poller's watermark uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from waybill_sandboxes.odoo.domain import (
    Node,
    evaluate,
    parse_domain,
    parse_order,
    required_values,
    sort_ids,
)
from waybill_sandboxes.odoo.exceptions import (
    MissingError,
    UserError,
    ValidationError,
    lock_conflict,
    value_error,
)
from waybill_sandboxes.odoo.record_index import RecordIndexes
from waybill_sandboxes.odoo.schema import MAGIC_FIELDS, X2MANY_TYPES, Field, ModelSpec, build_models
from waybill_sandboxes.odoo.values import DATETIME_FORMAT, convert_for_write, empty
from waybill_sandboxes.odoo.versions import OdooVersion
from waybill_sandboxes.odoo.x2many import apply_commands


@dataclass(frozen=True)
class RecordChange:
    """A record was created or written: what automation rules react to."""

    model: str
    record_id: int
    created: bool
    changed: frozenset[str]


class Registry:
    """The records of one simulated Odoo database."""

    def __init__(
        self,
        version: OdooVersion,
        *,
        clock: Callable[[], datetime] | None = None,
        with_delivery: bool = True,
    ) -> None:
        self.version = version
        self.with_delivery = with_delivery
        self.models: dict[str, ModelSpec] = build_models(version, with_delivery=with_delivery)
        # Each model's records by id, in id order (creation order; a rollback re-sorts).
        self._records: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in self.models}
        # Every change to a record goes through _insert, _put or _remove, which keep these.
        self._indexes = RecordIndexes(self._records)
        self._next_id: dict[str, int] = dict.fromkeys(self.models, 1)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sequences: dict[str, int] = {}
        # Model-specific defaults applied on create (names from sequences).
        self.create_defaults: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.listeners: list[Callable[[RecordChange], None]] = []
        # Inside a transaction: the records as they were before their first change.
        self._journal: dict[tuple[str, int], dict[str, Any] | None] | None = None
        self._after_commit: list[Callable[[], None]] = []
        self._lock_conflicts: dict[str, int] = {}
        self._record_locks: set[str] = set()
        self._refusals: dict[str, tuple[int, UserError]] = {}

    @contextmanager
    def transaction(self, operation: str | None = None) -> Iterator[None]:
        """Run one RPC call: on error every change is undone, as PostgreSQL would,
        and the work registered with :meth:`after_commit` is dropped.

        ``operation`` (``"stock.picking.write"``) names the call, so that lock
        conflicts injected with :meth:`inject_lock_conflicts` can hit it.
        """
        if self._journal is not None:
            yield  # already inside a transaction
            return
        if operation is not None and self._lock_conflicts.get(operation, 0) > 0:
            self._lock_conflicts[operation] -= 1
            raise lock_conflict(self.version.major, record_lock=operation in self._record_locks)
        if operation is not None and operation in self._refusals:
            times, refusal = self._refusals[operation]
            if times <= 1:
                del self._refusals[operation]
            else:
                self._refusals[operation] = (times - 1, refusal)
            raise refusal
        self._journal, self._after_commit = {}, []
        saved_ids, saved_sequences = dict(self._next_id), dict(self._sequences)
        try:
            yield
        except BaseException:
            for (model, record_id), before in self._journal.items():
                self._remove(model, record_id)
                if before is not None:
                    self._insert(model, record_id, before)
            for model in {model for model, _record_id in self._journal}:
                self._records[model] = dict(sorted(self._records[model].items()))
            self._next_id, self._sequences = saved_ids, saved_sequences
            self._journal, self._after_commit = None, []
            raise
        committed, self._journal, self._after_commit = self._after_commit, None, []
        for callback in committed:
            callback()

    def counters(self) -> dict[str, dict[str, int]]:
        """The next record id of every model and the last number of every sequence."""
        return {"ids": dict(self._next_id), "sequences": dict(self._sequences)}

    def continue_from(self, counters: dict[str, dict[str, int]]) -> None:
        """Go on after ``counters`` (from :meth:`counters`, saved by an earlier run):
        ids and sequence numbers are never handed out twice, as in a real database."""
        for model, next_id in counters.get("ids", {}).items():
            if model in self._next_id:
                self._next_id[model] = max(self._next_id[model], int(next_id))
        for code, last in counters.get("sequences", {}).items():
            self._sequences[code] = max(self._sequences.get(code, 0), int(last))

    def inject_lock_conflicts(
        self, operation: str, times: int = 1, *, record_lock: bool = False
    ) -> None:
        """Make the next ``times`` calls of ``operation`` fail with a lock conflict that
        outlived Odoo's own retries (0 clears); ``record_lock``: a row lock not granted
        (19's ``LockError``) instead of a serialization failure."""
        if times < 0:
            raise ValueError(f"times must be zero or more, not {times}")
        self._lock_conflicts[operation] = times
        if record_lock:
            self._record_locks.add(operation)
        else:
            self._record_locks.discard(operation)

    def inject_refusals(
        self, operation: str, message: str, times: int = 1, *, validation: bool = False
    ) -> None:
        """Make the next ``times`` calls of ``operation`` (``"account.move.action_post"``)
        refused by a business rule: a UserError (``validation``: a ValidationError) with
        ``message``, as a custom module's check or a locked period answers; 0 clears."""
        if times < 0:
            raise ValueError(f"times must be zero or more, not {times}")
        if times == 0:
            self._refusals.pop(operation, None)
            return
        refusal = ValidationError(message) if validation else UserError(message)
        self._refusals[operation] = (times, refusal)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction commits (at once outside one)."""
        if self._journal is None:
            callback()
        else:
            self._after_commit.append(callback)

    def _touch(self, model: str, record_id: int) -> None:
        """Remember a record's state before it changes, for rollback."""
        if self._journal is not None and (model, record_id) not in self._journal:
            current = self._records[model].get(record_id)
            self._journal[(model, record_id)] = None if current is None else dict(current)

    # ----------------------------------------------------------------- lookups
    def now(self) -> str:
        """The current time as Odoo stores datetimes (UTC, to the second)."""
        return self._clock().strftime(DATETIME_FORMAT)

    def today(self) -> str:
        """Today's date as Odoo stores dates."""
        return self._clock().strftime("%Y-%m-%d")

    def next_sequence(self, code: str) -> int:
        """The next number of a named sequence (order and picking references)."""
        self._sequences[code] = self._sequences.get(code, 0) + 1
        return self._sequences[code]

    def spec(self, model: str) -> ModelSpec:
        """The model's description; KeyError when the model is not simulated."""
        return self.models[model]

    def field(self, model: str, name: str) -> Field:
        """The field, or a ValueError-shaped error naming it."""
        found = self.models[model].fields.get(name)
        if found is None:
            raise value_error(f"Invalid field {name!r} on model {model!r}")
        return found

    def exists(self, model: str, ids: Iterable[int]) -> list[int]:
        """The ids that name existing records, in the given order."""
        table = self._records[model]
        return [i for i in ids if i in table]

    def ensure_exist(self, model: str, ids: list[int], uid: int) -> None:
        """Raise MissingError unless every id names an existing record."""
        missing = [i for i in ids if i not in self._records[model]]
        if missing:
            shown = ", ".join(str(i) for i in missing)
            raise MissingError(
                "Record does not exist or has been deleted.\n"
                f"(Record: {model}({shown},), User: {uid})"
            )

    def all_ids(self, model: str) -> list[int]:
        """Every record id of the model, in creation order."""
        return list(self._records[model])

    def value(self, model: str, record_id: int, name: str) -> Any:
        """A field's raw value (many2one as id, x2many as ids, empty as False)."""
        spec = self.models[model]
        field = spec.fields[name]
        if name == "id":
            return record_id
        if name == "display_name":
            return self.display_name(model, record_id)
        if field.related:
            return self._related_value(model, record_id, field.related)
        if field.mirrors:
            return self.value(model, record_id, field.mirrors)
        if field.type == "one2many":
            return self.one2many_ids(model, record_id, field)
        stored = self._records[model][record_id].get(name, False)  # the fields _on_record() accepts
        return list(stored or []) if field.type == "many2many" else stored

    def display_name(self, model: str, record_id: int) -> str:
        """What Odoo shows for the record (``[SKU] name`` for products)."""
        if record_id not in self._records.get(model, {}):
            return f"{model},{record_id}"
        spec = self.models[model]
        record = self._records[model][record_id]
        if model == "product.product" and record.get("default_code"):
            return f"[{record['default_code']}] {record.get('name') or ''}"
        rec_field = spec.fields.get(spec.rec_name)
        if rec_field is not None:
            raw = self.value(model, record_id, rec_field.name)
            if rec_field.type == "many2one":
                return self.display_name(rec_field.relation or "", raw) if raw else ""
            if raw:
                return str(raw)
        return f"{model},{record_id}"

    def _related_value(self, model: str, record_id: int, path: tuple[str, ...]) -> Any:
        current_model, current_id = model, record_id
        for step in path[:-1]:
            link = self.models[current_model].fields[step]
            target = self.value(current_model, current_id, step)
            if not target:
                return False
            current_model, current_id = link.relation or current_model, target
        return self.value(current_model, current_id, path[-1])

    def one2many_ids(self, model: str, record_id: int, field: Field) -> list[int]:
        """The ids of the comodel records pointing back at this record, in the comodel's order."""
        comodel = field.relation or ""
        inverse = field.inverse or ""
        table = self._records[comodel]
        matches = [
            other_id
            for other_id in sorted(self._indexes.ids_with(comodel, inverse, record_id))
            if table[other_id].get(inverse) == record_id
            and (field.model_field is None or table[other_id].get(field.model_field) == model)
        ]
        order = parse_order(self, comodel, self.models[comodel].order)
        return sort_ids(self, comodel, matches, order)

    # ------------------------------------------------------------------ search
    def search(
        self,
        model: str,
        domain: Any,
        *,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[int]:
        """Ids of the matching records, ordered, then sliced by offset and limit."""
        spec = self.models[model]
        tree = parse_domain(self, model, domain)
        keys = parse_order(self, model, order or spec.order)
        active_test = (context or {}).get("active_test", True)
        mentions_active = _domain_mentions(domain, "active")
        table = self._records[model]
        ids = [
            record_id
            for record_id in self._candidates(model, tree)
            if evaluate(self, model, record_id, tree)
            and not (
                "active" in spec.fields
                and active_test
                and not mentions_active
                and not table[record_id].get("active", True)
            )
        ]
        ids = sort_ids(self, model, ids, keys)
        if not isinstance(offset, int) or offset < 0:
            raise value_error(f"Invalid offset {offset!r}")
        if limit is not None and limit is not False and (not isinstance(limit, int) or limit < 0):
            raise value_error(f"Invalid limit {limit!r}")
        end = None if limit is None or limit is False else offset + limit
        return ids[offset:end]

    def _candidates(self, model: str, tree: Node) -> list[int]:
        """The ids that may match ``tree``, in id order: narrowed by the indexes when
        the domain requires a field to equal some values, else every record."""
        table = self._records[model]
        narrowed: set[int] | None = None
        for field, values in required_values(tree):
            if field.name == "id":
                if not all(type(value) is int for value in values):
                    continue  # 1.0 or True equal id 1: left to evaluate, which answers the int key
                ids = {value for value in values if value in table}
            elif _on_record(field):
                ids = set().union(*(self._indexes.ids_with(model, field.name, v) for v in values))
            else:
                continue  # computed on reading: no stored value to index
            narrowed = ids if narrowed is None else narrowed & ids
        return list(table) if narrowed is None else sorted(narrowed)

    # -------------------------------------------------------------------- read
    def read(
        self, model: str, ids: list[int], fields: list[str] | None = None, load: Any = None
    ) -> list[dict[str, Any]]:
        """Records as dicts, always with ``id``. Missing records are skipped, as Odoo does.

        ``load="_classic_read"`` gives many2one as ``[id, display_name]``,
        anything else as the bare id.
        """
        spec = self.models[model]
        names = list(fields) if fields else list(spec.fields)
        for name in names:
            if not isinstance(name, str) or name not in spec.fields:
                raise value_error(f"Invalid field {name!r} on model {model!r}")
        rows: list[dict[str, Any]] = []
        for record_id in self.exists(model, ids):
            row: dict[str, Any] = {"id": record_id}
            for name in names:
                field = spec.fields[name]
                raw = self.value(model, record_id, name)
                if field.type == "many2one" and raw and load == "_classic_read":
                    raw = [raw, self.display_name(field.relation or "", raw)]
                row[name] = raw
            rows.append(row)
        return rows

    # ------------------------------------------------------------------- write
    def create(self, model: str, vals_list: list[dict[str, Any]], uid: int) -> list[int]:
        """Create records; x2many commands in the values are applied after."""
        spec = self.models[model]
        created: list[int] = []
        for vals in vals_list:
            if not isinstance(vals, dict):
                raise value_error(f"Invalid values {vals!r}: expected a dictionary")
            values = {f.name: f.default for f in spec.fields.values() if f.default is not None}
            values.update(vals)
            if model in self.create_defaults:
                self.create_defaults[model](values)
            record_id = self._next_id[model]
            self._next_id[model] += 1
            self._touch(model, record_id)
            now = self.now()
            self._insert(
                model,
                record_id,
                {"create_date": now, "create_uid": uid, "write_date": now, "write_uid": uid},
            )
            try:
                self._assign(model, record_id, values, uid)
                self._check_required(spec, record_id)
            except Exception:
                self._delete(model, record_id)
                raise
            created.append(record_id)
        for record_id in created:
            self._emit(RecordChange(model, record_id, True, frozenset(spec.fields)))
        return created

    def write(self, model: str, ids: list[int], vals: dict[str, Any], uid: int) -> None:
        """Update records and stamp ``write_date``; emits one change per record."""
        if not isinstance(vals, dict):
            raise value_error(f"Invalid values {vals!r}: expected a dictionary")
        spec = self.models[model]
        self.ensure_exist(model, ids, uid)
        for name in vals:
            self.field(model, name)
        changes: list[RecordChange] = []
        for record_id in ids:
            before = {name: self.value(model, record_id, name) for name in vals}
            self._assign(model, record_id, vals, uid)
            self._check_required(spec, record_id)
            self._put(model, record_id, {"write_date": self.now(), "write_uid": uid})
            changed = frozenset(n for n in vals if before[n] != self.value(model, record_id, n))
            changes.append(RecordChange(model, record_id, False, changed))
        for change in changes:
            self._emit(change)

    def unlink(self, model: str, ids: list[int], uid: int) -> None:
        """Delete records; one2many children whose link is required go with them."""
        self.ensure_exist(model, ids, uid)
        for record_id in ids:
            self._delete(model, record_id)

    def _delete(self, model: str, record_id: int) -> None:
        for field in self.models[model].fields.values():
            if field.type == "one2many" and field.inverse:
                # Children whose link is required go with the parent (ondelete cascade).
                child_field = self.models[field.relation or ""].fields[field.inverse]
                for child in self.one2many_ids(model, record_id, field):
                    if child_field.required:
                        self._delete(field.relation or "", child)
                    else:
                        self.store(field.relation or "", child, {field.inverse: False})
        self._touch(model, record_id)
        self._remove(model, record_id)

    def _assign(self, model: str, record_id: int, vals: dict[str, Any], uid: int) -> None:
        spec = self.models[model]
        self._touch(model, record_id)
        later: list[tuple[Field, Any]] = []
        for name, raw in vals.items():
            field = self.field(model, name)
            if name in MAGIC_FIELDS or field.computed or field.related or field.mirrors:
                continue  # computed values cannot be written, Odoo ignores them
            if field.type in X2MANY_TYPES:
                later.append((field, raw))
                continue
            value = convert_for_write(model, field, raw)
            if field.type == "many2one" and value:
                self.ensure_exist(field.relation or "", [value], uid)
            self._put(model, record_id, {name: value})
        for field, commands in later:
            apply_commands(self, spec, record_id, field, commands, uid)

    def _check_required(self, spec: ModelSpec, record_id: int) -> None:
        record = self._records[spec.name][record_id]
        for field in spec.fields.values():
            if field.required and field.stored and empty(record.get(field.name, False)):
                raise ValidationError(
                    "The operation cannot be completed:\n"
                    "- Create/update: a mandatory field is not set.\n"
                    "- Delete: another model requires the record being deleted. "
                    "If possible, archive it instead.\n\n"
                    f"Model: {spec.description} ({spec.name})\n"
                    f"Field: {field.string} ({field.name})"
                )

    def store(self, model: str, record_id: int, values: dict[str, Any]) -> None:
        """Low level: put already converted values on a record (no checks, no events)."""
        self._touch(model, record_id)
        self._put(model, record_id, values)

    # The only three places that change the record tables, so the indexes follow.
    def _insert(self, model: str, record_id: int, record: dict[str, Any]) -> None:
        self._records[model][record_id] = record
        self._indexes.inserted(model, record_id, record)

    def _put(self, model: str, record_id: int, values: dict[str, Any]) -> None:
        record = self._records[model][record_id]
        self._indexes.changing(model, record_id, record, values)
        record.update(values)

    def _remove(self, model: str, record_id: int) -> None:
        record = self._records[model].pop(record_id, None)
        if record is not None:
            self._indexes.removed(model, record_id, record)

    def _emit(self, change: RecordChange) -> None:
        for listener in list(self.listeners):
            listener(change)


def _on_record(field: Field) -> bool:
    """Whether :meth:`Registry.value` reads this field's value off the record dict."""
    return not (
        field.name in ("id", "display_name")
        or field.related
        or field.mirrors
        or field.type in X2MANY_TYPES
    )


def _domain_mentions(domain: Any, name: str) -> bool:
    if not isinstance(domain, list | tuple):
        return False
    return any(
        isinstance(term, list | tuple) and len(term) == 3 and term[0] == name for term in domain
    )
