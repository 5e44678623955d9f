"""Is the current version wire-compatible with the baseline?

Within a major version old and new readers and writers run side by side, so
a change breaks when either side can no longer read the other:

* a message (subject) removed or renamed;
* a field removed, or its type (or constraint) changed;
* a required field added, or an optional field made required;
* an enum value removed, or added (readers of the baseline reject it).

Adding a message type, or an optional field (one with a default), is
additive: old readers ignore the field, new readers fill in the default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

from waybill_contracts.governance.snapshot import Snapshot, StructSpec

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHOWN_SUBJECTS = 3


class CompatReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a check: one line per breaking and per additive change."""

    breaking: tuple[str, ...]
    additive: tuple[str, ...]

    @property
    def compatible(self) -> bool:
        """True when nothing breaks (additive changes are fine)."""
        return not self.breaking


class _Usage:
    """Which subjects carry each struct and enum, for telling people what a change hits."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._subjects: dict[str, set[str]] = {}
        for message in snapshot.messages.values():
            for name in self._reachable(message.body):
                self._subjects.setdefault(name, set()).add(message.subject)

    def _reachable(self, root: str) -> set[str]:
        seen: set[str] = set()
        pending = [root]
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            struct = self._snapshot.structs.get(name)
            if struct is not None:
                for field in struct.fields.values():
                    pending.extend(_referenced_names(field.type))
        return seen

    def where(self, name: str) -> str:
        subjects = sorted(self._subjects.get(name, ()))
        if not subjects:
            return ""
        shown = ", ".join(subjects[:_SHOWN_SUBJECTS])
        more = len(subjects) - _SHOWN_SUBJECTS
        return f" (carried by {shown}{f', +{more} more' if more > 0 else ''})"


def _referenced_names(type_description: str) -> Iterable[str]:
    # Type descriptions name structs and enums verbatim ("array[OrderLine]",
    # "enum:MilestoneCode"); other tokens (str, array) match nothing in the map.
    return _NAME.findall(type_description.replace("enum:", ""))


class _Comparison:
    def __init__(self, baseline: Snapshot, current: Snapshot) -> None:
        self.baseline = baseline
        self.current = current
        self.old_usage = _Usage(baseline)
        self.new_usage = _Usage(current)
        # dicts keep first-seen order and drop repeats of the same finding.
        self.breaking: dict[str, None] = {}
        self.additive: dict[str, None] = {}

    def run(self) -> CompatReport:
        body_pairs = self._messages()
        pairs = dict.fromkeys(body_pairs)
        for name in sorted(self.baseline.structs.keys() & self.current.structs.keys()):
            pairs.setdefault((name, name))
        for old_name, new_name in pairs:
            self._struct(old_name, new_name)
        for name in sorted(self.baseline.enums.keys() & self.current.enums.keys()):
            self._enum(name)
        return CompatReport(breaking=tuple(self.breaking), additive=tuple(self.additive))

    def _messages(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        by_body = {spec.body: spec for spec in self.current.messages.values()}
        for ce_type, old in self.baseline.messages.items():
            new = self.current.messages.get(ce_type)
            if new is None:
                moved = by_body.get(old.body)
                if moved is not None and moved.subject != old.subject:
                    self.breaking[f"subject renamed: {old.subject} -> {moved.subject}"] = None
                else:
                    self.breaking[f"subject removed: {old.subject} ({ce_type})"] = None
                continue
            if new.subject != old.subject:
                self.breaking[f"subject renamed: {old.subject} -> {new.subject}"] = None
            pairs.append((old.body, new.body))
        for ce_type in sorted(self.current.messages.keys() - self.baseline.messages.keys()):
            self.additive[f"message added: {self.current.messages[ce_type].subject}"] = None
        return pairs

    def _struct(self, old_name: str, new_name: str) -> None:
        old = self.baseline.structs.get(old_name, StructSpec(fields={}))
        new = self.current.structs.get(new_name, StructSpec(fields={}))
        where = self.old_usage.where(old_name)
        for field_name, old_field in old.fields.items():
            label = f"{old_name}.{field_name}"
            new_field = new.fields.get(field_name)
            if new_field is None:
                self.breaking[f"{label}: field removed{where}"] = None
            elif new_field.type != old_field.type:
                self.breaking[
                    f"{label}: type changed from {old_field.type} to {new_field.type}{where}"
                ] = None
            elif new_field.required and not old_field.required:
                self.breaking[f"{label}: optional field became required{where}"] = None
            elif old_field.required and not new_field.required:
                self.additive[f"{label}: required field became optional"] = None
        for field_name in sorted(new.fields.keys() - old.fields.keys()):
            label = f"{new_name}.{field_name}"
            if new.fields[field_name].required:
                where_new = self.new_usage.where(new_name)
                self.breaking[f"{label}: required field added without a default{where_new}"] = None
            else:
                self.additive[f"{label}: optional field added"] = None

    def _enum(self, name: str) -> None:
        old, new = self.baseline.enums[name], self.current.enums[name]
        where = self.old_usage.where(name)
        for value in old:
            if value not in new:
                self.breaking[f"enum {name}: value {value!r} removed{where}"] = None
        for value in new:
            if value not in old:
                self.breaking[
                    f"enum {name}: value {value!r} added, readers of the baseline reject it{where}"
                ] = None


def compare(baseline: Snapshot, current: Snapshot) -> CompatReport:
    """Every breaking and additive change from ``baseline`` to ``current``, one line each."""
    return _Comparison(baseline, current).run()
