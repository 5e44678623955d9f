"""Service settings read from environment variables and checked before anything starts.

Each field of a settings struct is read from ``WAYBILL_<FIELD_NAME>`` (upper
case); ``nats_url`` is read from the conventional ``NATS_URL``. Services
subclass :class:`RuntimeSettings` and add their own fields under the same rule.
Constraints live on the fields (``Annotated[..., msgspec.Meta(...)]``), so the
checks, the error messages and :func:`describe_settings` all come from one place.

A bad or missing value raises :class:`SettingsError` with one line naming the
variable and what it expects, e.g.
``WAYBILL_HTTP_PORT='abc' is not valid: expected an integer between 0 and 65535``.
``OTEL_*`` variables belong to the OpenTelemetry SDK and are left alone.

Settings marked :data:`SECRET` are never shown: a settings struct's ``repr``
and :func:`settings_dump` print ``***`` for them. A secret still holding a
well-known value (its published default, or one of the sandboxes' keys named
with :func:`known_secrets`) stops a service at start unless it runs in a
local stack (``WAYBILL_LOCAL_STACK=true``, which `waybill up` sets).
"""

from __future__ import annotations

import difflib
import enum
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import msgspec.inspect as mi

from waybill_runtime.errors import UserFacingError

__all__ = [
    "SECRET",
    "SHOWN_FOR_SECRETS",
    "LogLevel",
    "RuntimeSettings",
    "ServiceName",
    "SettingInfo",
    "SettingsError",
    "describe_settings",
    "env_var_name",
    "known_secrets",
    "load_settings",
    "refuse_known_secrets",
    "settings_dump",
    "unknown_settings",
    "well_known_secrets",
]

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=msgspec.Struct)

_PREFIX = "WAYBILL_"
SECRETS_DIR_VAR = _PREFIX + "SECRETS_DIR"
# Fields read from a conventional variable instead of WAYBILL_<NAME>.
_STANDARD_NAMES = {"nats_url": "NATS_URL"}
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

SECRET = msgspec.Meta(extra={"secret": True})
"""Marks a setting as a credential, stacked on its other metadata:
``Annotated[str, msgspec.Meta(description=...), SECRET]``. Declarations list
it among the service's secrets and never print its default."""

SHOWN_FOR_SECRETS = "***"
"""What a settings dump or ``repr`` shows instead of a secret's value."""


def known_secrets(*values: str) -> msgspec.Meta:
    """Marks the public values a secret setting must not hold outside a local stack.

    Stacked after :data:`SECRET`: ``Annotated[str, ..., SECRET, known_secrets("wms-sandbox-key")]``.
    A secret's own non-empty default counts as known without being named here.
    """
    return msgspec.Meta(extra={"known_values": values})


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

ServiceName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=63,
        description="The service's name; used in message sources, consumer and dead-letter names",
        extra={"expected": "a service name such as order-desk (a-z, 0-9, - and _)"},
    ),
]


class SettingsError(UserFacingError):
    """A setting is missing or has a value the service cannot use."""


class RuntimeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Settings every Waybill service reads; services subclass it to add their own."""

    def __repr__(self) -> str:
        # Secrets never reach a log line or a traceback through a repr.
        shown = ", ".join(f"{name}={value!r}" for name, value in _shown_values(self).items())
        return f"{type(self).__name__}({shown})"

    def secret_values(self) -> list[str]:
        """The credentials these settings hold, for the log to cut out of every line.

        The settings marked secret; a service whose secrets sit inside a richer
        setting (a JSON list of endpoints) adds them by overriding this.
        """
        return [
            value
            for f in _fields(type(self))
            if _is_secret(f.type) and isinstance(value := getattr(self, f.name), str) and value
        ]

    service: ServiceName
    nats_url: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^(nats|tls|ws|wss)://\S+$",
            description="NATS server URL(s), comma-separated for a cluster",
            extra={"expected": "a NATS URL such as nats://127.0.0.1:4222"},
        ),
    ] = "nats://127.0.0.1:4222"
    subject_prefix: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
            description="First token(s) of every subject, so environments can share an account",
            extra={"expected": "NATS subject tokens such as waybill or acme.staging"},
        ),
    ] = "waybill"
    http_host: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            description="Address the HTTP server listens on: this machine only unless told "
            "otherwise (0.0.0.0 for every interface, as a container in Kubernetes needs)",
        ),
    ] = "127.0.0.1"
    http_port: Annotated[
        int,
        msgspec.Meta(
            ge=0, le=65535, description="Port for /healthz, /readyz, /metrics; 0 = any free port"
        ),
    ] = 8080
    state_dir: Annotated[
        str, msgspec.Meta(min_length=1, description="Folder for local state (embedded runs)")
    ] = ".waybill"
    local_stack: Annotated[
        bool,
        msgspec.Meta(
            description="true only in a stack on one machine against the partner sandboxes "
            "(`waybill up` and the test mesh set it): the sandboxes' well-known secrets are "
            "allowed there, and refused at start anywhere else"
        ),
    ] = False
    log_level: Annotated[LogLevel, msgspec.Meta(description="Lowest log level written")] = "INFO"
    consumer_concurrency: Annotated[
        int, msgspec.Meta(ge=1, le=10_000, description="Messages handled at the same time")
    ] = 16
    fetch_batch: Annotated[
        int, msgspec.Meta(ge=1, le=10_000, description="Messages fetched per pull request")
    ] = 64
    fetch_wait_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            le=60,
            description="Longest a pull request waits for messages; a consumer that hears "
            "nothing for longer (plus a grace) re-subscribes",
        ),
    ] = 1.0
    fetch_gather_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            le=5,
            description="While messages keep coming, a consumer asks for the next ones at "
            "most this often, so they arrive together: fewer wake-ups per message for at most "
            "this much more latency per hop (a message after a quiet spell is not held); 0 "
            "asks at once",
        ),
    ] = 0.2
    max_ack_pending: Annotated[
        int, msgspec.Meta(ge=1, description="Unacknowledged messages a consumer may hold")
    ] = 1000
    max_deliver: Annotated[
        int, msgspec.Meta(ge=1, description="Deliveries before a message is dead-lettered")
    ] = 8
    stream_replicas: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=5,
            description="Copies of each stream and KV bucket Waybill creates (3 on a "
            "three-node NATS cluster)",
        ),
    ] = 1
    events_retention_days: Annotated[
        float, msgspec.Meta(gt=0, le=3650, description="Days the events stream keeps an event")
    ] = 14.0
    commands_retention_days: Annotated[
        float, msgspec.Meta(gt=0, le=3650, description="Days the commands stream keeps a command")
    ] = 7.0
    dead_letters_retention_days: Annotated[
        float,
        msgspec.Meta(gt=0, le=3650, description="Days the dead-letter stream keeps a dead letter"),
    ] = 30.0
    duplicate_window_s: Annotated[
        float,
        msgspec.Meta(
            ge=120,
            le=86_400,
            description="Seconds in which JetStream drops a repeated message id (two minutes "
            "at least)",
        ),
    ] = 120.0
    retry_backoff_s: Annotated[
        tuple[Annotated[float, msgspec.Meta(ge=0)], ...],
        msgspec.Meta(min_length=1, description="Redelivery delays in seconds; the last repeats"),
    ] = (1.0, 5.0, 30.0, 120.0, 600.0)
    shutdown_deadline_s: Annotated[
        float, msgspec.Meta(gt=0, description="Seconds to finish in-flight work on shutdown")
    ] = 25.0
    # -- who may call the service's HTTP API (waybill_runtime.http.auth; docs/security.md)
    api_jwks_file: Annotated[
        str | None,
        msgspec.Meta(
            description="JWKS file of the keys that sign API tokens (re-read when it changes); "
            "`waybill up` writes one into its state folder",
            extra={"file": True, "expected": "the path of a JWKS file (or empty for none)"},
        ),
    ] = None
    api_jwks_url: Annotated[
        Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$")] | None,
        msgspec.Meta(
            description="JWKS URL of the identity provider that signs API tokens (https; http "
            "only on this machine)",
            extra={"expected": "an https URL such as https://id.example.com/jwks (or empty)"},
        ),
    ] = None
    api_hs256_secret_file: Annotated[
        str | None,
        msgspec.Meta(
            description="File holding a shared HS256 secret (32 bytes or more) for API tokens: "
            "local use only, on a loopback WAYBILL_HTTP_HOST; use a JWKS elsewhere",
            extra={"file": True, "expected": "the path of a secret file (or empty for none)"},
        ),
        SECRET,
    ] = None
    api_issuer: Annotated[
        str | None,
        msgspec.Meta(
            description="The iss every API token must carry (required with a key source)",
            extra={"expected": "the issuer of API tokens, e.g. https://id.example.com/"},
        ),
    ] = None
    api_audience: Annotated[
        str | None,
        msgspec.Meta(
            description="The aud every API token must carry (required with a key source)",
            extra={"expected": "the audience of API tokens, e.g. waybill-api"},
        ),
    ] = None
    api_revoked_jti_file: Annotated[
        str | None,
        msgspec.Meta(
            description="File of revoked token ids (jti), one a line (re-read when it "
            "changes); with it, every token must carry a jti",
            extra={"file": True, "expected": "the path of a text file (or empty for none)"},
        ),
    ] = None
    api_roles_claim: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[A-Za-z0-9_:/.-]+$",
            description="Claim holding the caller's roles (viewer, operator, admin): a list "
            "or a space-separated text",
            extra={"expected": "a claim name such as roles"},
        ),
    ] = "roles"
    api_leeway_s: Annotated[
        float,
        msgspec.Meta(ge=0, le=300, description="Clock skew allowed on exp, nbf and iat"),
    ] = 30.0
    api_jwks_refresh_s: Annotated[
        float,
        msgspec.Meta(
            ge=1, le=86_400, description="Seconds the keys read from WAYBILL_API_JWKS_URL are kept"
        ),
    ] = 300.0
    api_jwks_min_refresh_s: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            le=3600,
            description="Least seconds between two reads of WAYBILL_API_JWKS_URL (a token with "
            "an unknown kid reads it again, no more often than this)",
        ),
    ] = 30.0
    nats_credentials_file: Annotated[
        str | None,
        msgspec.Meta(
            description="NATS .creds file of this service's user",
            extra={"file": True, "expected": "the path of a .creds file (or empty for none)"},
        ),
    ] = None
    nats_nkey_seed_file: Annotated[
        str | None,
        msgspec.Meta(
            description="NATS nkey seed file of this service's user (`waybill up` writes one "
            "per service into its state folder)",
            extra={"file": True, "expected": "the path of an nkey seed file (or empty for none)"},
        ),
    ] = None
    secrets_dir: Annotated[
        str | None,
        msgspec.Meta(
            description="Folder of files named after this service's secret settings' variables "
            "(a mounted Kubernetes Secret); each file gives its setting unless the variable "
            "itself is set",
            extra={"expected": "the path of a folder (or empty for none)"},
        ),
    ] = None
    fact_id_key: Annotated[
        Annotated[str, msgspec.Meta(min_length=16)] | None,
        msgspec.Meta(
            description="Secret that keys the ids of observed facts, so no other client can "
            "squat them (default: derived from this service's NATS seed; set it, the same "
            "for every replica, to keep ids stable across key rotations)",
            extra={"expected": "a random string of 16 characters or more"},
        ),
        SECRET,
    ] = None
    nats_tls_ca_file: Annotated[
        str | None,
        msgspec.Meta(
            description="CA certificate (PEM) that signed the NATS server's certificate; with "
            "any TLS file set the service talks TLS only, whatever the URL's scheme "
            "(`waybill up --tls` writes <state folder>/nats/tls/ca.pem)",
            extra={"file": True, "expected": "the path of a PEM CA file (or empty for none)"},
        ),
    ] = None
    nats_tls_cert_file: Annotated[
        str | None,
        msgspec.Meta(
            description="Client certificate (PEM) for NATS servers that verify clients "
            "(mutual TLS); needs WAYBILL_NATS_TLS_KEY_FILE",
            extra={"file": True, "expected": "the path of a PEM certificate (or empty for none)"},
        ),
    ] = None
    nats_tls_key_file: Annotated[
        str | None,
        msgspec.Meta(
            description="Private key (PEM) of WAYBILL_NATS_TLS_CERT_FILE",
            extra={"file": True, "expected": "the path of a PEM key file (or empty for none)"},
        ),
    ] = None
    provision: Annotated[
        Literal["auto", "never"],
        msgspec.Meta(
            description="auto: create missing streams, buckets and durables at start (needs "
            "stream-admin rights); never: only bind to them (`waybill provision` made them)"
        ),
    ] = "auto"
    http_max_body_bytes: Annotated[
        int, msgspec.Meta(ge=1, description="Largest HTTP request body accepted")
    ] = 1_048_576
    version: Annotated[
        str, msgspec.Meta(min_length=1, description="Version reported by the service")
    ] = "0.1.0"


class SettingInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One environment variable a settings struct reads (for READMEs and --help)."""

    env_var: str
    expected: str
    required: bool
    default: str | None
    description: str
    # A credential: never printed, never passed on a command line.
    secret: bool = False


class _BadValue(Exception):
    """Internal: a text could not be read as the field's type."""


def env_var_name(field_name: str) -> str:
    """The environment variable a settings field is read from."""
    return _STANDARD_NAMES.get(field_name, _PREFIX + field_name.upper())


def _fields(cls: type[msgspec.Struct]) -> tuple[mi.Field, ...]:
    info = mi.type_info(cls)
    if not isinstance(info, mi.StructType):  # pragma: no cover - guarded by the type hint
        raise TypeError(f"{cls!r} is not a msgspec Struct")
    return info.fields


# --- describing what a field expects -------------------------------------------------


def _num(value: float) -> str:
    return f"{value:g}"


def _bounds(t: mi.IntType | mi.FloatType) -> str:
    low = f">= {_num(t.ge)}" if t.ge is not None else f"> {_num(t.gt)}" if t.gt is not None else ""
    high = f"<= {_num(t.le)}" if t.le is not None else f"< {_num(t.lt)}" if t.lt is not None else ""
    if t.ge is not None and t.le is not None:
        return f" between {_num(t.ge)} and {_num(t.le)}"
    parts = [part for part in (low, high) if part]
    return " " + " and ".join(parts) if parts else ""


def _expected(t: mi.Type) -> str:
    """Plain words for what a value of type ``t`` must look like."""
    if isinstance(t, mi.Metadata):
        custom = (t.extra or {}).get("expected")
        return str(custom) if custom else _expected(t.type)
    if isinstance(t, mi.IntType):
        return "an integer" + _bounds(t)
    if isinstance(t, mi.FloatType):
        return "a number" + _bounds(t)
    if isinstance(t, mi.BoolType):
        return "true or false"
    if isinstance(t, mi.StrType):
        if t.pattern:
            return f"a text matching {t.pattern}"
        return "a non-empty text" if t.min_length else "a text"
    if isinstance(t, mi.LiteralType):
        return "one of " + ", ".join(str(v) for v in t.values)
    if isinstance(t, mi.EnumType):
        return "one of " + ", ".join(str(member.value) for member in t.cls)
    if isinstance(t, mi.VarTupleType | mi.ListType | mi.SetType | mi.FrozenSetType):
        at_least = f" (at least {t.min_length})" if t.min_length else ""
        return f"a comma-separated list{at_least}, each {_expected(t.item_type)}"
    if isinstance(t, mi.TupleType):
        return f"a comma-separated list of {len(t.item_types)} values"
    if isinstance(t, mi.UnionType):
        options = [_expected(x) for x in t.types if not isinstance(x, mi.NoneType)]
        text = " or ".join(options)
        return text + " (or empty for none)" if t.includes_none else text
    return "a JSON value of the right shape"


def _description(t: mi.Type) -> str:
    if isinstance(t, mi.Metadata):
        return str((t.extra_json_schema or {}).get("description", "")) or _description(t.type)
    return ""


def _is_file_setting(t: mi.Type) -> bool:
    return isinstance(t, mi.Metadata) and bool((t.extra or {}).get("file"))


def _is_secret(t: mi.Type) -> bool:
    return isinstance(t, mi.Metadata) and bool((t.extra or {}).get("secret"))


# --- reading a value from text -----------------------------------------------------


def _from_text(text: str, t: mi.Type) -> Any:
    """Turn an environment variable's text into a value msgspec can validate."""
    if isinstance(t, mi.Metadata):
        return _from_text(text, t.type)
    stripped = text.strip()
    if isinstance(t, mi.UnionType):
        if t.includes_none and not stripped:
            return None
        for option in t.types:
            if isinstance(option, mi.NoneType):
                continue
            try:
                return _from_text(text, option)
            except _BadValue:
                continue
        raise _BadValue
    if isinstance(t, mi.StrType):
        return stripped
    if isinstance(t, mi.BoolType):
        lowered = stripped.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise _BadValue
    if isinstance(t, mi.IntType):
        try:
            return int(stripped)
        except ValueError:
            raise _BadValue from None
    if isinstance(t, mi.FloatType):
        try:
            number = float(stripped)
        except ValueError:
            raise _BadValue from None
        if not math.isfinite(number):
            raise _BadValue
        return number
    if isinstance(t, mi.LiteralType):
        return _literal_from_text(stripped, t)
    if isinstance(t, mi.EnumType):
        return _enum_from_text(stripped, t.cls)
    if isinstance(t, mi.VarTupleType | mi.ListType | mi.SetType | mi.FrozenSetType):
        return [_from_text(item, t.item_type) for item in _split(stripped)]
    if isinstance(t, mi.TupleType):
        items = _split(stripped)
        if len(items) != len(t.item_types):
            raise _BadValue
        return [_from_text(item, kind) for item, kind in zip(items, t.item_types, strict=True)]
    # Anything richer (dicts, structs, dates) is written as JSON or left for msgspec.
    try:
        return msgspec.json.decode(stripped)
    except msgspec.DecodeError:
        return stripped


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _literal_from_text(text: str, t: mi.LiteralType) -> Any:
    for value in t.values:
        if isinstance(value, str) and value.lower() == text.lower():
            return value
        if isinstance(value, int) and str(value) == text:
            return value
    raise _BadValue


def _enum_from_text(text: str, cls: type[enum.Enum]) -> Any:
    for member in cls:
        if text.lower() in (str(member.value).lower(), member.name.lower()):
            return member
    raise _BadValue


# --- loading ------------------------------------------------------------------------

_ERROR_PATH = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
    """Read and validate ``cls`` from ``environ`` (default: ``os.environ``).

    ``overrides`` set fields directly (by field name) and win over the
    environment; a string override is read like an environment value. An empty
    variable counts as unset, except for optional fields where it means None.
    Unknown ``WAYBILL_*`` variables are logged as a warning (likely typos).
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    fields = _fields(cls)
    names = {f.name for f in fields}
    stray = sorted(set(overrides) - names)
    if stray:
        raise TypeError(f"{cls.__name__} has no setting(s) {', '.join(stray)}")

    values: dict[str, Any] = {}
    labels: dict[str, str] = {}  # field -> how errors name its source
    from_files = _secrets_from_folder(cls, env)
    for f in fields:
        var = env_var_name(f.name)
        if f.name in overrides:
            raw: Any = overrides[f.name]
            labels[f.name] = f"{f.name}={raw!r}"
        elif var in env and (env[var].strip() or _includes_none(f.type)):
            raw = env[var]
            # An error names the variable; a secret's value never reaches a log line.
            labels[f.name] = (
                f"{var}={SHOWN_FOR_SECRETS}" if _is_secret(f.type) else f"{var}={raw!r}"
            )
        elif var in from_files:
            raw, path = from_files[var]
            labels[f.name] = f"{var} (the file {path})"
        else:
            if f.required:
                raise SettingsError(f"{var} is required: set it to {_expected(f.type)}")
            continue
        try:
            values[f.name] = _from_text(raw, f.type) if isinstance(raw, str) else raw
        except _BadValue:
            raise SettingsError(
                f"{labels[f.name]} is not valid: expected {_expected(f.type)}"
            ) from None

    try:
        settings = msgspec.convert(values, cls)
    except msgspec.ValidationError as err:
        raise _explain(err, {f.name: f for f in fields}, labels) from None

    _check_files(settings, fields, labels)
    _warn_about_unknown(cls, env)
    return settings


def _secrets_from_folder(
    cls: type[msgspec.Struct], env: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """The secret settings given as files in WAYBILL_SECRETS_DIR: variable -> (text, path).

    Kubernetes mounts a Secret as a folder with one file per key, so each
    secret setting comes from the file named after its variable; a file that
    is not there leaves its setting unset (optional keys of the Secret).
    """
    folder = env.get(SECRETS_DIR_VAR, "").strip()
    if not folder:
        return {}
    root = Path(folder)
    if not root.is_dir():
        raise SettingsError(
            f"{SECRETS_DIR_VAR}={folder!r} is not valid: no such folder; point it at the folder "
            "the service's Secret is mounted in, or unset it"
        )
    secret_vars = {env_var_name(f.name) for f in _fields(cls) if _is_secret(f.type)}
    found: dict[str, tuple[str, str]] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue  # a Secret volume's own bookkeeping (..data and its timestamped folder)
        if entry.name not in secret_vars:
            logger.warning(
                "ignoring %s: %s reads no secret setting of that name", entry, cls.__name__
            )
            continue
        try:
            text = entry.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise SettingsError(
                f"{entry} (from {SECRETS_DIR_VAR}) cannot be read ({reason}): fix its "
                "permissions or its content (UTF-8 text)"
            ) from None
        # A file written with `echo` or an editor ends with a newline that is not the secret.
        found[entry.name] = (text.rstrip("\r\n"), str(entry))
    return found


def _includes_none(t: mi.Type) -> bool:
    if isinstance(t, mi.Metadata):
        return _includes_none(t.type)
    return isinstance(t, mi.UnionType) and t.includes_none


def _explain(
    err: msgspec.ValidationError, fields: Mapping[str, mi.Field], labels: Mapping[str, str]
) -> SettingsError:
    match = _ERROR_PATH.search(str(err))
    name = match.group(1) if match else None
    if name is not None and name in fields and name in labels:
        return SettingsError(
            f"{labels[name]} is not valid: expected {_expected(fields[name].type)}"
        )
    # A check across fields (a __post_init__ of a service's settings).
    return SettingsError(f"settings are not valid: {err}")


def _check_files(
    settings: msgspec.Struct, fields: tuple[mi.Field, ...], labels: Mapping[str, str]
) -> None:
    for f in fields:
        path = getattr(settings, f.name)
        if not _is_file_setting(f.type) or path is None:
            continue
        source = labels.get(f.name, env_var_name(f.name))
        if not os.path.isfile(path):
            raise SettingsError(
                f"{source} is not valid: no such file; point it at an existing file or unset it"
            )
        if not os.access(path, os.R_OK):
            raise SettingsError(
                f"{source} is not valid: this user cannot read the file; fix its permissions"
            )


# Variables of the partner sandboxes (their version, their secrets): a local
# stack's services inherit them and rightly do not read them.
_SANDBOX_PREFIX = "WAYBILL_SANDBOX_"


def unknown_settings(cls: type[msgspec.Struct], environ: Mapping[str, str]) -> list[str]:
    """``WAYBILL_*`` variables in ``environ`` that ``cls`` does not read (the sandboxes'
    ``WAYBILL_SANDBOX_*`` aside)."""
    known = {env_var_name(f.name) for f in _fields(cls)}
    return sorted(
        var
        for var in environ
        if var.startswith(_PREFIX) and not var.startswith(_SANDBOX_PREFIX) and var not in known
    )


def _warn_about_unknown(cls: type[msgspec.Struct], env: Mapping[str, str]) -> None:
    # Compared without the prefix, so WAYBILL_NATS_URL suggests NATS_URL.
    by_field = {f.name.upper(): env_var_name(f.name) for f in _fields(cls)}
    for var in unknown_settings(cls, env):
        close = difflib.get_close_matches(var.removeprefix(_PREFIX), list(by_field), n=1)
        hint = f" (did you mean {by_field[close[0]]}?)" if close else ""
        logger.warning("ignoring %s: %s does not read it%s", var, cls.__name__, hint)


def _shown_values(settings: msgspec.Struct) -> dict[str, Any]:
    return {
        f.name: SHOWN_FOR_SECRETS
        if _is_secret(f.type) and getattr(settings, f.name) not in (None, "")
        else getattr(settings, f.name)
        for f in _fields(type(settings))
    }


def settings_dump(settings: msgspec.Struct) -> dict[str, Any]:
    """Every setting by its environment variable, secrets shown as ``***`` (for logs, support)."""
    return {env_var_name(name): value for name, value in _shown_values(settings).items()}


def _known_values(f: mi.Field) -> frozenset[str]:
    known: set[str] = set()
    if isinstance(f.type, mi.Metadata):
        known.update(str(v) for v in (f.type.extra or {}).get("known_values", ()))
    if not f.required and f.default is not msgspec.NODEFAULT and isinstance(f.default, str):
        known.add(f.default)
    known.discard("")
    return frozenset(known)


def well_known_secrets(settings: msgspec.Struct) -> list[str]:
    """The variables of the secrets in ``settings`` that hold a well-known (sandbox) value."""
    return [
        env_var_name(f.name)
        for f in _fields(type(settings))
        if _is_secret(f.type) and getattr(settings, f.name) in _known_values(f)
    ]


def refuse_known_secrets(settings: RuntimeSettings) -> None:
    """Stop a service that would run with a sandbox's well-known secret outside a local stack.

    "Locally" means ``WAYBILL_LOCAL_STACK=true``: `waybill up` and the test
    mesh set it for services that talk to the partner sandboxes on one machine.
    """
    if settings.local_stack:
        return
    named = well_known_secrets(settings)
    if named:
        raise SettingsError(
            f"{', '.join(named)} still hold{'s' if len(named) == 1 else ''} a well-known sandbox "
            "value: set the real credentials (or leave an unused one empty), or set "
            "WAYBILL_LOCAL_STACK=true when this runs on one machine against the sandboxes"
        )


def describe_settings(cls: type[msgspec.Struct]) -> list[SettingInfo]:
    """Every variable ``cls`` reads, with what it expects and its default."""
    described = []
    for f in _fields(cls):
        default: str | None = None
        if not f.required:
            value = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
            if isinstance(value, tuple | list | set | frozenset):
                default = ",".join(
                    f"{item:g}" if isinstance(item, float) else str(item) for item in value
                )
            else:
                default = "" if value is None else str(value)
        described.append(
            SettingInfo(
                env_var=env_var_name(f.name),
                expected=_expected(f.type),
                required=f.required,
                default=default,
                description=_description(f.type),
                secret=_is_secret(f.type),
            )
        )
    return described
