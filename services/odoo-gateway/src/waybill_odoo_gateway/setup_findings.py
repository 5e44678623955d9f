"""One item of the Odoo doctor's check: fine, wrong (with what to do), or a warning."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding"]


@dataclass(frozen=True)
class Finding:
    """One item of the check: fine or not, and the line that says so."""

    item: str
    ok: bool
    line: str
    blocking: bool = False
    """The gateway cannot work this way (it reports not ready)."""
    warning: bool = False
    """Worth saying, but nothing needs doing as far as the gateway can tell (it could not
    check, and the line says how to by hand; or it copes): printed ``WARN`` and logged,
    kept out of the exit code and the readiness detail."""
