"""The `declared:` block of a service's Helm values: what the chart must know of the code.

Each entry comes from the service's declaration (`waybill services --json`) or
its settings type, never from a hand-kept list: the HTTP port, whether it takes
webhooks or API calls (its NetworkPolicy ingress), its partners (egress), its
durables (KEDA triggers), its secret settings (read with ``secretKeyRef``), the
settings that name a file (mounted from Secrets) and the ones an operator may
set at all (the values schema).
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from waybill_contracts import SubjectMap
from waybill_runtime.bus.provisioning import CONSUMER_LIMIT_SETTINGS
from waybill_runtime.declaration import Declaration, DeclaredSetting
from waybill_runtime.service import Service
from waybill_runtime.settings import env_var_name

__all__ = [
    "CHART_SET",
    "Consumer",
    "DeclaredValues",
    "SecretSetting",
    "declared_values",
    "settable_settings",
]

# The prefix declarations are described under; stream names are stored without it
# (the chart puts the release's WAYBILL_SUBJECT_PREFIX in front).
_PREFIX = "waybill"

CHART_SET = frozenset(
    {
        # Who and where the service is: the chart sets them from its own values.
        "WAYBILL_SERVICE",
        "NATS_URL",
        "WAYBILL_HTTP_HOST",
        "WAYBILL_HTTP_PORT",
        "WAYBILL_PROVISION",
        "WAYBILL_STATE_DIR",
        # Files the chart mounts from Secrets and ConfigMaps (nats.*, api.*, secrets).
        "WAYBILL_SECRETS_DIR",
        "WAYBILL_NATS_NKEY_SEED_FILE",
        "WAYBILL_NATS_TLS_CA_FILE",
        "WAYBILL_NATS_TLS_CERT_FILE",
        "WAYBILL_NATS_TLS_KEY_FILE",
        "WAYBILL_API_JWKS_FILE",
        "WAYBILL_API_JWKS_URL",
        "WAYBILL_API_REVOKED_JTI_FILE",
        "WAYBILL_API_ISSUER",
        "WAYBILL_API_AUDIENCE",
        # A shared HS256 secret only works on a loopback address (docs/security.md):
        # never in a cluster, where the service listens on 0.0.0.0.
        "WAYBILL_API_HS256_SECRET_FILE",
        # Only a stack on one machine against the sandboxes may accept their well-known
        # secrets; a cluster never is one.
        "WAYBILL_LOCAL_STACK",
    }
)
"""Settings the chart sets itself (or never sets): not among a service's `settings`."""


class Consumer(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A durable of the service: its stream (without the subject prefix) and name."""

    stream_suffix: str
    durable: str


class SecretSetting(msgspec.Struct, frozen=True, kw_only=True):
    required: bool
    description: str


class DeclaredValues(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The generated `declared:` block of one service's chart values."""

    name: str
    version: str
    description: str
    port: int
    ingress: bool
    """It takes webhooks or API calls: its NetworkPolicy lets callers in."""
    protected_routes: bool
    """Some routes need a bearer token: the chart passes the api.* settings."""
    routes: list[str]
    partners: list[str]
    consumers: list[Consumer]
    secret_settings: dict[str, SecretSetting]
    file_settings: list[str]
    consumer_defaults: dict[str, str]
    shutdown_deadline_s: float

    def as_values(self) -> dict[str, Any]:
        values: dict[str, Any] = msgspec.to_builtins(self)
        return values


def _file_settings(settings_type: type[msgspec.Struct]) -> set[str]:
    info = mi.type_info(settings_type)
    assert isinstance(info, mi.StructType)
    return {
        env_var_name(f.name)
        for f in info.fields
        if isinstance(f.type, mi.Metadata) and (f.type.extra or {}).get("file")
    }


def _consumers(declaration: Declaration) -> list[Consumer]:
    subjects = SubjectMap(_PREFIX)
    durables = {(c.stream, c.durable) for c in declaration.consumes}
    if declaration.consumes_dead_letters:
        durables.add((subjects.dlq_stream.name, subjects.durable(declaration.name, "dead-letters")))
    strip = f"{_PREFIX.upper()}_"
    return [
        Consumer(stream_suffix=stream.removeprefix(strip), durable=durable)
        for stream, durable in sorted(durables)
    ]


def _default(settings: list[DeclaredSetting], env_var: str) -> str:
    for setting in settings:
        if setting.env_var == env_var and setting.default is not None:
            return setting.default
    raise LookupError(f"the runtime settings have no default for {env_var}")


def settable_settings(service: Service[Any]) -> list[DeclaredSetting]:
    """The settings an operator sets through the chart's `settings` map (not secrets, no files)."""
    declaration = service.describe(subject_prefix=_PREFIX)
    files = _file_settings(service.settings_type)
    return [
        s
        for s in declaration.settings
        if not s.secret and s.env_var not in files and s.env_var not in CHART_SET
    ]


def declared_values(service: Service[Any]) -> DeclaredValues:
    """The `declared:` block of ``service``'s chart values."""
    declaration = service.describe(subject_prefix=_PREFIX)
    files = _file_settings(service.settings_type)
    return DeclaredValues(
        name=declaration.name,
        version=declaration.version,
        description=declaration.description,
        port=declaration.ports["http"],
        ingress=any(r.audience in ("partner", "operator") for r in declaration.routes),
        protected_routes=any(r.role is not None for r in declaration.routes),
        routes=[f"{r.method} {r.path}" for r in declaration.routes],
        partners=[p.name for p in declaration.partners],
        consumers=_consumers(declaration),
        secret_settings={
            s.env_var: SecretSetting(required=s.required, description=s.description)
            for s in declaration.settings
            if s.secret and s.env_var not in files and s.env_var not in CHART_SET
        },
        file_settings=sorted(files - CHART_SET),
        consumer_defaults={
            var: _default(declaration.settings, var) for var in CONSUMER_LIMIT_SETTINGS
        },
        shutdown_deadline_s=float(_default(declaration.settings, "WAYBILL_SHUTDOWN_DEADLINE_S")),
    )
