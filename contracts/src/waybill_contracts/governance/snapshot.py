"""A normalized, diffable description of the contracts as they are on the wire.

The snapshot records, per message type, its subject and body struct, and
per struct its fields by wire name with a type description and whether the
field is required. Documentation is left out on purpose: rewording a
description is never a breaking change. Committed as the baseline, it is
what :mod:`waybill_contracts.governance.compat` compares against.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import msgspec.inspect as mi

from waybill_contracts.catalog import MESSAGE_TYPES
from waybill_contracts.messages import Message
from waybill_contracts.subjects import SubjectMap

SNAPSHOT_FORMAT = 1
BASELINE_PATH = Path(__file__).resolve().parent.parent / "baseline" / "contracts.json"
"""The committed baseline inside the package (the repository file in an editable install)."""


class FieldSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A field as readers and writers see it."""

    type: str
    required: bool


class StructSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A struct's fields, by wire name."""

    fields: dict[str, FieldSpec]


class MessageSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Where a message type travels and which struct is its body."""

    kind: str
    subject: str
    body: str


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The contracts at one point in time, keyed by ``ce-type``, struct and enum name."""

    format: int
    messages: dict[str, MessageSpec]
    structs: dict[str, StructSpec]
    enums: dict[str, list[str | int]]


class BaselineError(Exception):
    """The baseline file is missing or unreadable: the message says what to do."""


class _Describer:
    """Turns msgspec type info into short type strings, collecting structs and enums."""

    def __init__(self) -> None:
        self.structs: dict[str, StructSpec] = {}
        self.enums: dict[str, list[str | int]] = {}
        self._struct_types: dict[str, type] = {}

    def describe(self, info: mi.Type) -> str:
        if isinstance(info, mi.Metadata):
            return self.describe(info.type)
        if isinstance(info, mi.StructType):
            return self._struct(info)
        if isinstance(info, mi.EnumType):
            name = info.cls.__name__
            self.enums[name] = [member.value for member in info.cls]
            return f"enum:{name}"
        if isinstance(info, mi.UnionType):
            return " | ".join(sorted(self.describe(option) for option in info.types))
        if isinstance(info, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
            limits = _limits(info, "min_length", "max_length")
            return f"array[{self.describe(info.item_type)}]{limits}"
        if isinstance(info, mi.DictType):
            return f"map[{self.describe(info.key_type)}, {self.describe(info.value_type)}]"
        if isinstance(info, mi.LiteralType):
            return f"literal[{', '.join(repr(value) for value in info.values)}]"
        return _scalar(info)

    def _struct(self, info: mi.StructType) -> str:
        name = info.cls.__name__
        known = self._struct_types.setdefault(name, info.cls)
        if known is not info.cls:
            raise TypeError(f"two contract structs are named {name}: names must be unique")
        if name not in self.structs:
            # Register before describing fields, so recursive structs terminate.
            self.structs[name] = StructSpec(fields={})
            fields = {
                field.encode_name: FieldSpec(
                    type=self.describe(field.type), required=field.required
                )
                for field in info.fields
            }
            self.structs[name] = StructSpec(fields=fields)
        return name


_SCALARS: dict[type[mi.Type], tuple[str, tuple[str, ...]]] = {
    mi.StrType: ("str", ("min_length", "max_length", "pattern")),
    mi.IntType: ("int", ("gt", "ge", "lt", "le", "multiple_of")),
    mi.FloatType: ("float", ("gt", "ge", "lt", "le", "multiple_of")),
    mi.BoolType: ("bool", ()),
    mi.NoneType: ("null", ()),
    mi.DecimalType: ("decimal", ()),
    mi.DateTimeType: ("datetime", ("tz",)),
    mi.DateType: ("date", ()),
    mi.TimeType: ("time", ("tz",)),
    mi.UUIDType: ("uuid", ()),
    mi.AnyType: ("any", ()),
}


def _scalar(info: mi.Type) -> str:
    try:
        name, constraints = _SCALARS[type(info)]
    except KeyError:
        raise TypeError(f"contracts cannot describe {info!r}: use a plain JSON type") from None
    return name + _limits(info, *constraints)


def _limits(info: object, *names: str) -> str:
    parts = [f"{name}={getattr(info, name)!r}" for name in names if getattr(info, name) is not None]
    return f"({', '.join(parts)})" if parts else ""


def take_snapshot(message_types: tuple[type[Message], ...] = MESSAGE_TYPES) -> Snapshot:
    """The snapshot of the given message types (all of them by default)."""
    subjects = SubjectMap()
    describer = _Describer()
    messages: dict[str, MessageSpec] = {}
    for message_type, info in zip(message_types, mi.multi_type_info(message_types), strict=True):
        messages[subjects.ce_type_for(message_type)] = MessageSpec(
            kind=str(message_type.kind),
            subject=subjects.subject_for(message_type),
            body=describer.describe(info),
        )
    return Snapshot(
        format=SNAPSHOT_FORMAT,
        messages=messages,
        structs=describer.structs,
        enums=describer.enums,
    )


def snapshot_json(snapshot: Snapshot) -> bytes:
    """The snapshot as stable, sorted, indented JSON (so baseline diffs are readable)."""
    return msgspec.json.format(msgspec.json.encode(snapshot, order="sorted"), indent=2) + b"\n"


def load_baseline(path: Path = BASELINE_PATH) -> Snapshot:
    """Read a committed baseline; :class:`BaselineError` if it is missing or malformed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BaselineError(
            f"no baseline at {path}: create it with `waybill contracts snapshot`"
        ) from None
    except OSError as error:
        raise BaselineError(f"cannot read baseline {path}: {error.strerror}") from None
    try:
        baseline = msgspec.json.decode(raw, type=Snapshot)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as error:
        raise BaselineError(
            f"baseline {path} is not a contracts snapshot ({error}): restore it from git"
        ) from None
    if baseline.format != SNAPSHOT_FORMAT:
        raise BaselineError(
            f"baseline {path} has format {baseline.format}, this version reads "
            f"{SNAPSHOT_FORMAT}: upgrade waybill-contracts"
        )
    return baseline


def write_baseline(snapshot: Snapshot, path: Path = BASELINE_PATH) -> None:
    """Write ``snapshot`` as the baseline at ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(snapshot_json(snapshot))
    except OSError as error:
        raise BaselineError(f"cannot write baseline {path}: {error.strerror}") from None
