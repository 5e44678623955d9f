"""What Waybill writes is readable by its owner only: files 0600, folders 0700, from the start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from waybill_runtime.private_files import open_private, private_folder, touch_private, write_private


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, as many machines have: privacy must not depend on the umask."""
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def test_folders_are_made_private_with_every_missing_parent(
    tmp_path: Path, open_umask: None
) -> None:
    tmp_path.chmod(0o755)
    folder = private_folder(tmp_path / "state" / "nats" / "identities")
    assert folder == tmp_path / "state" / "nats" / "identities"
    for made in (folder, folder.parent, folder.parent.parent):
        assert mode(made) == 0o700
    assert mode(tmp_path) == 0o755  # a parent that existed is left alone


def test_an_own_folder_left_open_is_tightened_a_named_one_is_not(tmp_path: Path) -> None:
    logs, named = tmp_path / "logs", tmp_path / "chosen"
    for folder in (logs, named):
        folder.mkdir()
        folder.chmod(0o755)
    private_folder(logs)
    private_folder(named, tighten=False)
    assert (mode(logs), mode(named)) == (0o700, 0o755)


def test_files_are_created_private_and_appended_to(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "orchestrator.log"
    with open_private(path) as log:
        log.write(b"one\n")
    path.chmod(0o644)  # an older version left it open
    with open_private(path) as log:
        log.write(b"two\n")
    assert path.read_bytes() == b"one\ntwo\n"
    assert mode(path) == 0o600


def test_a_private_file_can_be_replaced_whole(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "nats-server.conf"
    write_private(path, "port: 4222\n")
    write_private(path, "port: 4223\n")
    assert path.read_text() == "port: 4223\n"
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["nats-server.conf"]
    with open_private(path, "wb") as file:
        file.write(b"x")
    assert path.read_bytes() == b"x"


def test_touching_keeps_the_content_and_tightens(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "audit.sqlite"
    path.write_bytes(b"SQLite format 3\x00")
    path.chmod(0o644)
    touch_private(path)
    touch_private(tmp_path / "new.sqlite")
    assert path.read_bytes() == b"SQLite format 3\x00"
    assert mode(path) == mode(tmp_path / "new.sqlite") == 0o600


def test_only_byte_writing_modes_are_offered(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use mode 'ab' or 'wb'"):
        open_private(tmp_path / "x", "r")
