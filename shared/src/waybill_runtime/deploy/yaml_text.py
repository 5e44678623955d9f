"""A small YAML writer for generated values: block style, every string double-quoted.

Generated values are plain data (maps, lists, text, numbers, booleans), so a
writer this size is enough and the runtime needs no YAML library. A
double-quoted YAML scalar is a JSON string, so :func:`json.dumps` quotes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})


def _key(key: str) -> str:
    if _PLAIN_KEY.match(key) and key.lower() not in _RESERVED:
        return key
    return json.dumps(key, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML: {value!r}")


def yaml_lines(value: Mapping[str, Any], indent: int = 0) -> list[str]:
    """``value`` as YAML lines, each indented by ``indent`` spaces."""
    pad = " " * indent
    lines: list[str] = []
    for key, item in value.items():
        lines.extend(_entry(f"{pad}{_key(key)}:", item, indent))
    return lines


def _entry(head: str, item: Any, indent: int) -> list[str]:
    if isinstance(item, Mapping):
        if not item:
            return [f"{head} {{}}"]
        return [head, *yaml_lines(item, indent + 2)]
    if isinstance(item, Sequence) and not isinstance(item, str):
        if not item:
            return [f"{head} []"]
        lines = [head]
        for element in item:
            lines.extend(_element(element, indent + 2))
        return lines
    return [f"{head} {_scalar(item)}"]


def _element(element: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(element, Mapping) and element:
        first, *rest = yaml_lines(element, indent + 2)
        return [f"{pad}- {first.lstrip()}", *rest]
    if isinstance(element, Mapping | list | tuple):
        return _entry(f"{pad}-", element, indent)
    return [f"{pad}- {_scalar(element)}"]


def to_yaml(value: Mapping[str, Any], indent: int = 0) -> str:
    return "\n".join(yaml_lines(value, indent)) + "\n"
