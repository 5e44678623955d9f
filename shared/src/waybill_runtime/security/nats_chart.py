"""The mesh's accounts and users as values for the official NATS Helm chart (nats-io/k8s ``nats``).

`waybill nats permissions --helm` prints them; ``deploy/nats/accounts.yaml`` is
that output, kept equal to it by a test. They go into the chart's
``config.merge`` (merged into the server's config as written):

* account ``WAYBILL`` with JetStream, holding one nkey user per identity (each
  service, the admin, the operator) with the permissions generated from the
  declarations, exactly those `waybill nats` runs with locally;
* account ``SYS``, the system account, with one user for people's tools
  (``nats server report``), its password from the same Secret.

No key is written here: a public key differs per installation, so each user's
``nkey`` is a variable (``<< $WAYBILL_NKEY_AUDITOR >>``, which the chart leaves
unquoted) that the server reads from its environment, which ``container.env``
fills from the Secret ``waybill-nats-users`` (`waybill nats identities` writes
its contents). The same values therefore serve every installation that uses
the same subject prefix.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from waybill_contracts import SubjectMap
from waybill_runtime.private_files import private_folder, write_private
from waybill_runtime.security.authorization import mesh_identities
from waybill_runtime.security.permissions import Identity

if TYPE_CHECKING:
    from waybill_runtime.service import Service

__all__ = [
    "MESH_ACCOUNT",
    "SYSTEM_ACCOUNT",
    "SYSTEM_PASSWORD_VAR",
    "USERS_SECRET",
    "chart_values",
    "mesh_values",
    "nkey_variable",
    "render_values",
    "system_password",
]

MESH_ACCOUNT = "WAYBILL"
SYSTEM_ACCOUNT = "SYS"
SYSTEM_USER = "sys"
USERS_SECRET = "waybill-nats-users"
SYSTEM_PASSWORD_VAR = "WAYBILL_NATS_SYS_PASSWORD"
SYSTEM_PASSWORD_FILE = "sys.password"


def system_password(identities_folder: Path) -> str:
    """The password of the system account's user, made once in the identities folder.

    The servers read it from their environment as a config value, and nats-server
    parses such a value: one starting with a digit is taken for a number and the
    server refuses to start ("Expected a digit"). So it starts with letters.
    """
    path = identities_folder / SYSTEM_PASSWORD_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    password = "sys" + secrets.token_hex(24)
    private_folder(identities_folder)
    write_private(path, password + "\n")
    return password


def nkey_variable(identity: str) -> str:
    """The environment variable holding ``identity``'s public nkey on the servers."""
    return "WAYBILL_NKEY_" + re.sub(r"[^A-Za-z0-9]", "_", identity).upper()


def _from_secret(variable: str) -> dict[str, Any]:
    return {"valueFrom": {"secretKeyRef": {"name": USERS_SECRET, "key": variable}}}


def _user(identity: Identity) -> dict[str, Any]:
    permissions: dict[str, Any] = {
        "publish": {"allow": list(identity.permissions.publish)},
        "subscribe": {"allow": list(identity.permissions.subscribe)},
    }
    if identity.permissions.allow_responses:
        permissions["allow_responses"] = True
    return {"nkey": f"<< ${nkey_variable(identity.name)} >>", "permissions": permissions}


def chart_values(identities: Sequence[Identity]) -> dict[str, Any]:
    """The chart values (a nested mapping) for ``identities``' accounts, users and Secret."""
    variables = [nkey_variable(i.name) for i in identities] + [SYSTEM_PASSWORD_VAR]
    return {
        "config": {
            "merge": {
                "accounts": {
                    MESH_ACCOUNT: {
                        "jetstream": "enabled",
                        "users": [_user(i) for i in identities],
                    },
                    SYSTEM_ACCOUNT: {
                        "users": [
                            {"user": SYSTEM_USER, "password": f"<< ${SYSTEM_PASSWORD_VAR} >>"}
                        ]
                    },
                },
                "system_account": SYSTEM_ACCOUNT,
            }
        },
        "container": {"env": {v: _from_secret(v) for v in variables}},
    }


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else json.dumps(key)


def _scalar(value: Any) -> str:
    # JSON's quoting is YAML's double-quoted style: `$`, `>` and `*` stay literal.
    return json.dumps(value)


def _yaml(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{_key(key)}:")
                lines += _yaml(item, indent + 2)
            else:
                lines.append(f"{pad}{_key(key)}: {_scalar(item)}")
        return lines
    assert isinstance(value, list)
    for item in value:
        if isinstance(item, Mapping | list) and item:
            nested = _yaml(item, indent + 2)
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines += nested[1:]
        else:
            lines.append(f"{pad}- {_scalar(item)}")
    return lines


def render_values(identities: Sequence[Identity], subject_prefix: str) -> str:
    """:func:`chart_values` as a YAML values file, headed by how it was made."""
    header = [
        "# Accounts and users of the Waybill mesh for the official NATS chart (deploy/nats).",
        f"# Generated from the services' declarations for subject prefix {subject_prefix!r} by",
        "#   waybill nats permissions --helm"
        + ("" if subject_prefix == "waybill" else f" --subject-prefix {subject_prefix}"),
        "# Do not edit: change a declaration and generate again. Public keys come from the",
        f"# Secret {USERS_SECRET} (`waybill nats identities` writes its contents).",
    ]
    return "\n".join([*header, *_yaml(chart_values(identities), 0)]) + "\n"


def mesh_values(services: Iterable[Service[Any]], subject_prefix: str) -> str:
    """The values for ``services``' mesh: what ``deploy/nats/accounts.yaml`` holds."""
    declarations = [s.describe(subject_prefix=subject_prefix) for s in services]
    identities = mesh_identities(declarations, SubjectMap(subject_prefix))
    return render_values(identities, subject_prefix)
