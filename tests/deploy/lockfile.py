"""Reading the images' lock files (deploy/docker/*.lock, written by `make lock`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "requirements.lock"
BUILD_LOCK = LOCK.with_name("requirements-build.lock")

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


@dataclass
class Pin:
    name: str  # canonical
    version: str
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)


def read_lock(path: Path = LOCK) -> dict[str, Pin]:
    """Every pinned package of the lock by canonical name; anything else fails loudly."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert current is not None, f"{path.name}:{number}: a hash before any pin"
            current.hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
            continue
        match = _PIN.match(stripped)
        assert match, f"{path.name}:{number}: not an exact pin: {stripped}"
        name, version, marker = match.groups()
        current = Pin(canonicalize_name(name), version, Marker(marker) if marker else None)
        pins[current.name] = current
    return pins
