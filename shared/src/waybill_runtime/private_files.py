"""Files and folders only their owner may read: what Waybill creates is 0600, folders 0700.

Logs, the audit database, nkey seeds, the NATS config and anything else
Waybill writes may hold customers' data or credentials. They are created
private from the start (never created open and tightened later, which leaves
a window), and tightened when an older version left them open.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "open_private",
    "private_folder",
    "touch_private",
    "write_private",
]

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path, *, tighten: bool = True) -> Path:
    """Create ``path`` (and any missing parents) readable by its owner only; returns it.

    Parents Waybill creates are private too; parents that already exist are
    left as they are. An existing ``path`` is made 0700 when ``tighten`` (a
    folder of Waybill's own, such as ``logs``); a folder a person named (a
    state folder, which could be ``/tmp``) is only ever created private.
    """
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        # Another process of the stack may make it meanwhile.
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=FOLDER_MODE)
    if missing or tighten:
        path.chmod(FOLDER_MODE)
    return path


def touch_private(path: Path) -> Path:
    """Make sure ``path`` exists as a file readable by its owner only (its content is kept).

    For files another library opens (SQLite makes its journal and WAL files
    with the database's permissions, so a private database stays private).
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)
    return path


def open_private(path: Path, mode: str = "ab") -> IO[bytes]:
    """Open ``path`` for writing in binary ``mode`` ("ab" or "wb"), created 0600."""
    flags = os.O_WRONLY | os.O_CREAT
    if mode == "ab":
        flags |= os.O_APPEND
    elif mode == "wb":
        flags |= os.O_TRUNC
    else:
        raise ValueError(f"open_private writes bytes: use mode 'ab' or 'wb', not {mode!r}")
    descriptor = os.open(path, flags, FILE_MODE)
    os.fchmod(descriptor, FILE_MODE)
    return os.fdopen(descriptor, mode)


def write_private(path: Path, text: str | bytes) -> None:
    """Replace ``path``'s content with ``text``, atomically, as a file only its owner reads."""
    temporary = path.with_name(path.name + ".tmp")
    with open_private(temporary, "wb") as file:
        file.write(text.encode() if isinstance(text, str) else text)
    os.replace(temporary, path)
