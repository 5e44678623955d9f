"""The nats-server ``authorization`` block of a mesh: its identities, each an nkey user.

What `waybill nats permissions` prints and what the embedded server is
started with. Subjects are JSON-quoted, which the server's config format
accepts (and which keeps ``$`` and ``>`` literal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from waybill_contracts import SubjectMap
from waybill_runtime.declaration import Declaration
from waybill_runtime.security.nkeys_store import NkeyUser
from waybill_runtime.security.permissions import (
    Identity,
    admin_identity,
    operator_identity,
    service_identity,
)

# Stands in for a public key where none is known yet (printing without a state folder).
PLACEHOLDER_KEY = "<public nkey of {name}>"


def mesh_identities(
    declarations: Sequence[Declaration], subjects: SubjectMap, *, tracing: bool = True
) -> list[Identity]:
    """Every identity of a mesh: one per service, then the admin and the operator.

    ``tracing`` defaults to on so a mesh may switch OpenTelemetry on without
    new permissions (the traces bucket is then the only extra right).
    """
    return [
        *(service_identity(d, subjects, tracing=tracing) for d in declarations),
        admin_identity(),
        operator_identity(subjects),
    ]


def _allow(subjects: list[str], indent: str) -> list[str]:
    # One subject a line, so a diff of two generations reads as a diff of rights.
    return [
        f"{indent}  allow: [",
        *(f"{indent}    {json.dumps(s)}," for s in subjects),
        f"{indent}  ]",
    ]


def _public_key(identity: Identity, users: Mapping[str, NkeyUser] | None) -> str:
    user = (users or {}).get(identity.name)
    return PLACEHOLDER_KEY.format(name=identity.name) if user is None else user.public_key


def _credentials(
    identity: Identity, users: Mapping[str, NkeyUser] | None, passwords: Mapping[str, str]
) -> list[str]:
    if identity.name in passwords:
        return [
            f"      user: {json.dumps(identity.name)}",
            f"      password: {json.dumps(passwords[identity.name])}",
        ]
    return [f"      nkey: {json.dumps(_public_key(identity, users))}"]


def render_authorization(
    identities: Sequence[Identity],
    users: Mapping[str, NkeyUser] | None = None,
    *,
    passwords: Mapping[str, str] | None = None,
) -> str:
    """The ``authorization { users: [...] }`` block for nats-server's config file.

    Identities are nkey users, except those named in ``passwords`` (the test
    suite's harness, which connects with a URL such as ``nats://user:pw@host``).
    """
    lines = ["authorization {", "  users: ["]
    for identity in identities:
        permissions = identity.permissions
        lines += [
            f"    # {identity.role} {identity.name}; replies come to {identity.inbox_prefix}.>",
            "    {",
            *_credentials(identity, users, passwords or {}),
            "      permissions: {",
            "        publish: {",
            *_allow(permissions.publish, "        "),
            "        }",
            "        subscribe: {",
            *_allow(permissions.subscribe, "        "),
            "        }",
        ]
        if permissions.allow_responses:
            lines.append("        allow_responses: true")
        lines += ["      }", "    }"]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def authorization_json(
    identities: Sequence[Identity], users: Mapping[str, NkeyUser] | None = None
) -> list[dict[str, Any]]:
    """The same as :func:`render_authorization`, for tools."""
    return [
        {**msgspec.to_builtins(identity), "nkey": _public_key(identity, users)}
        for identity in identities
    ]
