"""Record ids by the stored value of a field, kept up to date as records change.

Without these the registry answered every ``search`` and every one2many read
by looking at every record of the model, so each call cost time proportional
to everything created so far (a 10,000-order burst stalled the sandbox).
An index is built the first time a field is looked up by value and is then
maintained by every change the registry makes, rollbacks included; fields
never looked up by value cost nothing.

An index only narrows the records to look at: the registry still evaluates
the whole domain on them, so an index has to hold every record whose value
equals the one asked for (Python ``==``, which is what the domain compares
with) and may hold no other kind of mistake than extra ids.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from waybill_sandboxes.odoo.values import hashable

Record = dict[str, Any]


class ValueIndex:
    """The ids of one model's records by the stored value of one field."""

    def __init__(self, field: str) -> None:
        self.field = field
        self._ids: dict[Hashable, set[int]] = {}

    def add(self, record_id: int, value: Any) -> None:
        """Record that ``record_id`` now holds ``value``."""
        if hashable(value):
            self._ids.setdefault(value, set()).add(record_id)
        # An unhashable value (a list) never equals the hashable values looked up.

    def discard(self, record_id: int, value: Any) -> None:
        """Record that ``record_id`` no longer holds ``value``."""
        if not hashable(value):
            return
        ids = self._ids.get(value)
        if ids is not None:
            ids.discard(record_id)
            if not ids:
                del self._ids[value]

    def ids(self, value: Hashable) -> set[int]:
        """The ids holding a value equal to ``value`` (empty set when none)."""
        return self._ids.get(value, set())


class RecordIndexes:
    """Every value index of a registry's records, by model and field name."""

    def __init__(self, records: Mapping[str, Mapping[int, Record]]) -> None:
        self._records = records
        self._by_model: dict[str, dict[str, ValueIndex]] = {}

    def ids_with(self, model: str, field: str, value: Hashable) -> set[int]:
        """The ids of ``model``'s records whose stored ``field`` equals ``value``.

        Only for stored fields (what the record dict holds, missing read as
        ``False``); the index is built from the records on first use.
        """
        indexes = self._by_model.setdefault(model, {})
        index = indexes.get(field)
        if index is None:
            index = indexes[field] = ValueIndex(field)
            for record_id, record in self._records[model].items():
                index.add(record_id, record.get(field, False))
        return index.ids(value)

    def inserted(self, model: str, record_id: int, record: Record) -> None:
        """A record was put in the table (created, or brought back by a rollback)."""
        for name, index in self._by_model.get(model, {}).items():
            index.add(record_id, record.get(name, False))

    def removed(self, model: str, record_id: int, record: Record) -> None:
        """A record is about to leave the table (deleted, or undone by a rollback)."""
        for name, index in self._by_model.get(model, {}).items():
            index.discard(record_id, record.get(name, False))

    def changing(self, model: str, record_id: int, record: Record, values: Record) -> None:
        """``values`` are about to be written on ``record`` (still holding the old ones)."""
        for name, index in self._by_model.get(model, {}).items():
            if name in values:
                index.discard(record_id, record.get(name, False))
                index.add(record_id, values[name])
