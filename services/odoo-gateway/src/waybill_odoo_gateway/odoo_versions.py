"""What differs between Odoo 16, 17, 18 and 19 for the fields and calls the gateway uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["OLDEST_SUPPORTED", "OdooDialect", "parse_major"]

OLDEST_SUPPORTED = 16
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class OdooDialect:
    """One Odoo major version, as the gateway needs to know it."""

    major: int

    @property
    def series(self) -> str:
        """``"17.0"``."""
        return f"{self.major}.0"

    @property
    def move_done_field(self) -> str:
        """Where a stock move keeps its done quantity: ``quantity_done`` (16), ``quantity``."""
        return "quantity_done" if self.major <= 16 else "quantity"

    @property
    def has_picked_flag(self) -> bool:
        """17+ moves carry a ``picked`` flag that validation looks at."""
        return self.major >= 17

    @property
    def has_json2(self) -> bool:
        """Whether ``/json/2/<model>/<method>`` exists (19+)."""
        return self.major >= 19

    def validate_context(self, picking_id: int) -> dict[str, Any]:
        """Context for ``button_validate`` that validates in full, without any wizard.

        Skips the backorder wizard (and does not create a backorder); 16 also
        asks to confirm an "immediate transfer" when nothing was marked done.
        """
        context: dict[str, Any] = {
            "skip_backorder": True,
            "picking_ids_not_to_backorder": [picking_id],
        }
        if self.major <= 16:
            context["skip_immediate"] = True
        return context


def parse_major(server_version_info: Any) -> int | None:
    """The major version from ``server_version_info`` (``[17, 0, 0, "final", 0, ""]``).

    Odoo Online names its series ``"saas~17.2"``; the digits after ``~`` are the major.
    """
    if not isinstance(server_version_info, list | tuple) or not server_version_info:
        return None
    first = server_version_info[0]
    if isinstance(first, int) and not isinstance(first, bool):
        return first
    if isinstance(first, str):
        found = _DIGITS.search(first)
        return int(found.group(1)) if found else None
    return None
