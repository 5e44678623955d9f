"""The metric names a PromQL expression reads (enough of PromQL for dashboards and rules).

Strings, label matchers, range selectors and ``by``/``without``/``on``/``ignoring``
clauses are removed first; what is left that is not a function call, a
keyword or a number is a metric name.
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
)


def metric_names(expression: str) -> set[str]:
    """The metrics ``expression`` selects, e.g. ``{"waybill_orders_stuck"}``."""
    text = _STRING.sub('""', expression)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    # Durations after offset (5m) and numbers start with a digit: the pattern skips them.
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}
