"""Nkey seeds on disk: one per identity, in a folder only its owner can read.

Seeds are kept across runs (a running `waybill nats` and a later
`waybill dlq --nkey-seed-file ...` must agree), created when missing, with
mode 0600 in a folder of mode 0700. A seed never goes on a command line:
processes are told the path of their seed file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nkeys

from waybill_runtime.errors import UserFacingError
from waybill_runtime.private_files import private_folder

_SEED_SUFFIX = ".nk"


class SeedFileError(UserFacingError):
    """A seed file cannot be read, written, or holds no user seed."""


@dataclass(frozen=True)
class NkeyUser:
    """An identity's seed file and the public key the server knows it by."""

    name: str
    seed_file: Path
    public_key: str


def public_key_of(seed_file: Path) -> str:
    """The public user key (``U...``) of the seed in ``seed_file``."""
    try:
        seed = bytearray(seed_file.read_bytes().strip())
        pair = nkeys.from_seed(seed)
    except OSError as error:
        raise SeedFileError(
            f"cannot read the nkey seed {seed_file} ({error.strerror or error}): check the path "
            "and that this user may read it"
        ) from None
    except Exception as error:  # nkeys raises its own, unrelated types
        raise SeedFileError(
            f"{seed_file} holds no valid nkey seed ({error or type(error).__name__}): "
            "delete it to have a new one made, or point at the right file"
        ) from None
    try:
        return str(pair.public_key.decode())
    finally:
        pair.wipe()


def seed_path(folder: Path, name: str) -> Path:
    """Where ``folder`` keeps the seed of identity ``name``."""
    return folder / f"{name}{_SEED_SUFFIX}"


def _new_seed() -> bytes:
    return bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))


def new_seed_file(path: Path) -> None:
    """Write a new user seed to ``path``, which must not exist, readable by its owner only."""
    # Created 0600 from the start: the seed is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(_new_seed() + b"\n")


def ensure_users(folder: Path, names: list[str]) -> dict[str, NkeyUser]:
    """A seed for each of ``names`` in ``folder`` (kept if present), by name."""
    try:
        private_folder(folder)
    except OSError as error:
        raise SeedFileError(
            f"cannot prepare the nkey folder {folder} ({error.strerror or error}): choose "
            "another state folder with --state-dir or WAYBILL_STATE_DIR"
        ) from None
    users = {}
    for name in names:
        path = seed_path(folder, name)
        if not path.exists():
            new_seed_file(path)
        path.chmod(0o600)
        users[name] = NkeyUser(name=name, seed_file=path, public_key=public_key_of(path))
    return users


def known_users(folder: Path, names: list[str]) -> dict[str, NkeyUser] | None:
    """The users of ``names`` whose seeds ``folder`` already holds (None: it holds none).

    For printing: reads seeds, never creates one.
    """
    found = {
        name: NkeyUser(name=name, seed_file=path, public_key=public_key_of(path))
        for name in names
        if (path := seed_path(folder, name)).is_file()
    }
    return found or None
