"""A CloudEvent read from NATS headers by the binding's rules alone, to check what Waybill wrote.

Written from the CloudEvents spec and its NATS binding, not with Waybill's
own code, so a test that uses it can catch Waybill misreading the spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import unquote

REQUIRED = ("specversion", "id", "source", "type")
# Lower-case ASCII letters and digits; the spec advises 20 characters at most.
ATTRIBUTE_NAME = re.compile("[a-z0-9]{1,20}")
# Printable ASCII without space, double quote or a bare percent sign; escapes in upper-case hex.
ENCODED_VALUE = re.compile(r"(?:[!#$&-~]|%[0-9A-F]{2})*")


def binary_cloudevent(headers: Mapping[str, str]) -> dict[str, str]:
    """The attributes of the binary-mode CloudEvent ``headers`` carry; fails if it is not one."""
    attributes: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if not lower.startswith("ce-"):
            continue
        attribute = lower.removeprefix("ce-")
        assert ATTRIBUTE_NAME.fullmatch(attribute), f"{name}: not a valid attribute name"
        assert attribute not in attributes, f"{name}: attribute sent twice"
        assert ENCODED_VALUE.fullmatch(value), f"{name}: {value!r} is not percent-encoded"
        attributes[attribute] = unquote(value, errors="strict")
    for required in REQUIRED:
        assert attributes.get(required), f"required attribute {required} is missing"
    assert attributes["specversion"] == "1.0"
    if "time" in attributes:
        assert datetime.fromisoformat(attributes["time"]).tzinfo is not None
    return attributes
