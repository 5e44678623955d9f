"""A mesh's identities made real: a seed for each, and the server config that knows them.

`waybill up`, `waybill nats` and the secured test fixtures call :func:`secure_mesh`
with the installed services' declarations; it keeps the seeds in
``<state folder>/nats/identities`` (see :mod:`waybill_runtime.security.nkeys_store`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from waybill_contracts import SubjectMap
from waybill_runtime.declaration import Declaration
from waybill_runtime.security.authorization import mesh_identities, render_authorization
from waybill_runtime.security.nkeys_store import NkeyUser, ensure_users
from waybill_runtime.security.permissions import Identity


def identities_folder(state_dir: Path) -> Path:
    """Where a state folder keeps its nkey seeds."""
    return state_dir / "nats" / "identities"


@dataclass(frozen=True)
class MeshSecurity:
    """Every identity of a mesh, with its seed file; :attr:`authorization` for the server."""

    identities: list[Identity]
    users: dict[str, NkeyUser]

    @property
    def authorization(self) -> str:
        return render_authorization(self.identities, self.users)

    def seed_file(self, name: str) -> Path:
        """The seed file of identity ``name`` (a service, ``admin`` or ``operator``)."""
        return self.users[name].seed_file


def secure_mesh(
    declarations: Sequence[Declaration], subjects: SubjectMap, state_dir: Path
) -> MeshSecurity:
    """The identities of ``declarations`` (plus admin and operator), seeds kept in ``state_dir``."""
    identities = mesh_identities(declarations, subjects)
    users = ensure_users(identities_folder(state_dir), [i.name for i in identities])
    return MeshSecurity(identities=identities, users=users)
