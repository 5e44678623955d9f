"""The Odoo major versions the sandbox speaks, and what differs between them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUPPORTED_VERSIONS = (16, 17, 18, 19)


@dataclass(frozen=True)
class OdooVersion:
    """One Odoo major version and the wire and model differences it brings."""

    major: int

    def __post_init__(self) -> None:
        if self.major not in SUPPORTED_VERSIONS:
            supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
            raise ValueError(f"Odoo {self.major} is not simulated: choose one of {supported}")

    @property
    def series(self) -> str:
        """``"17.0"``."""
        return f"{self.major}.0"

    @property
    def version_info(self) -> list[Any]:
        """``server_version_info``: ``[17, 0, 0, "final", 0, ""]``."""
        return [self.major, 0, 0, "final", 0, ""]

    @property
    def jsonrpc_error_code(self) -> int:
        """The JSON-RPC ``error.code`` of server errors: 200 up to 18, 0 from 19."""
        return 0 if self.major >= 19 else 200

    @property
    def has_json2(self) -> bool:
        """The ``/json/2`` API and its bearer documentation exist from 19."""
        return self.major >= 19

    @property
    def has_webhooks(self) -> bool:
        """The "Send Webhook Notification" server action exists from 17."""
        return self.major >= 17

    @property
    def webhooks_after_commit(self) -> bool:
        """19 sends webhooks after commit; 17-18 inside the transaction (even if it rolls back)."""
        return self.major >= 19

    @property
    def has_immediate_transfer(self) -> bool:
        """16 asks to confirm an "immediate transfer" when nothing was marked done."""
        return self.major == 16

    @property
    def move_done_field(self) -> str:
        """Where a stock move keeps its done quantity."""
        return "quantity_done" if self.major == 16 else "quantity"

    @property
    def order_line_uom_field(self) -> str:
        """The unit of measure field of a sale order line (renamed in 19)."""
        return "product_uom_id" if self.major >= 19 else "product_uom"

    def common_version(self) -> dict[str, Any]:
        """What ``common.version()`` and ``/web/webclient/version_info`` return."""
        return {
            "server_version": self.series,
            "server_version_info": self.version_info,
            "server_serie": self.series,
            "protocol_version": 1,
        }
