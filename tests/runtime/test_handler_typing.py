"""mypy refuses a handler whose context is typed for another service, or not a context at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

HEADER = """
from waybill_contracts.commands import ReleaseToWarehouse
from waybill_runtime.bus.consumer import HandlerContext
from waybill_runtime.service import Service
from waybill_runtime.settings import RuntimeSettings


class BridgeSettings(RuntimeSettings, frozen=True, kw_only=True):
    warehouse: str = "AMS1"


class MailSettings(RuntimeSettings, frozen=True, kw_only=True):
    sender: str = "ship@example.test"


service = Service("bridge", settings_type=BridgeSettings)
"""

WELL_TYPED = (
    HEADER
    + """

@service.handles(ReleaseToWarehouse)
async def release(command: ReleaseToWarehouse, ctx: HandlerContext[BridgeSettings]) -> None:
    print(ctx.settings.warehouse, ctx.runtime.settings.warehouse)
"""
)

MISTYPED = (
    HEADER
    + """

@service.handles(ReleaseToWarehouse)  # refused: a number is no context
async def as_number(command: ReleaseToWarehouse, ctx: int) -> None:
    pass


@service.handles(ReleaseToWarehouse)  # refused: another service's context
async def as_mailer(command: ReleaseToWarehouse, ctx: HandlerContext[MailSettings]) -> None:
    pass


async def reads_a_setting_it_lacks(ctx: HandlerContext[BridgeSettings]) -> None:
    print(ctx.settings.sender)  # refused: a setting of another service
"""
)


@pytest.mark.timeout(300)
def test_mypy_refuses_a_handler_with_a_mistyped_context(tmp_path: Path) -> None:
    (tmp_path / "well_typed.py").write_text(WELL_TYPED)
    (tmp_path / "mistyped.py").write_text(MISTYPED)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--config-file",
            str(REPOSITORY / "pyproject.toml"),
            "well_typed.py",
            "mistyped.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if e.startswith("well_typed.py")], result.stdout
    lines = sorted({int(e.split(":")[1]) for e in errors if e.startswith("mistyped.py")})
    refused = [n for n, line in enumerate(MISTYPED.splitlines(), 1) if "# refused" in line]
    assert lines == refused, result.stdout
