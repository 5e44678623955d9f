"""waybill-contracts installs alone: msgspec is the only thing pip pulls in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"

# Run inside the fresh environment: round-trip a message, check against the shipped baseline.
SMOKE = """
from waybill_contracts import SubjectMap, decode, encode, new_context
from waybill_contracts.events import OrderReleased
from waybill_contracts.examples import example_of
subjects = SubjectMap()
message = example_of(OrderReleased)
sent = encode(message, new_context(message, source="outsider"), subjects)
assert decode(sent.subject, sent.headers, sent.body, subjects).message == message
from waybill_contracts.governance import check
assert check().compatible  # the baseline ships inside the package
print(sent.subject)
"""


@pytest.mark.slow
def test_contracts_install_into_an_empty_environment_with_only_msgspec(tmp_path: Path) -> None:
    # Build from a clean copy so the repository gets no build/ or egg-info litter.
    source = tmp_path / "contracts"
    shutil.copytree(
        CONTRACTS_DIR, source, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build")
    )
    venv = tmp_path / "venv"
    # No pip inside: the environment holds exactly what the install brings.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]

    subprocess.run([*pip, "install", "--quiet", str(source)], check=True, timeout=300)

    listed = subprocess.run(
        [*pip, "list", "--format=json"], check=True, capture_output=True, text=True, timeout=60
    )
    installed = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert installed == {"msgspec", "waybill-contracts"}
    smoke = subprocess.run(
        [str(python), "-c", SMOKE], check=True, capture_output=True, text=True, timeout=60
    )
    assert smoke.stdout.strip() == "waybill.evt.order.released.v1"
