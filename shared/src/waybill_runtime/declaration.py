"""What a service is, in one machine-readable place: the declaration.

A :class:`~waybill_runtime.service.Service` is declared once, next to its
code: its name, the messages it handles, the buckets it owns, the partners it
talks to, its HTTP routes and its settings. The messages it may publish and
the commands it may send come from the contracts (each event names its
publishers, each command its senders), so they cannot drift from them.

:func:`describe` turns a service into a :class:`Declaration`, a plain
msgspec struct that `waybill services --json` prints and that everything
generated from the services reads: the local stack's wiring, the test mesh,
and (next) NATS permissions and Helm values. Nothing else may hard-code what
a service consumes, publishes or needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from waybill_contracts import (
    KV_PURPOSES,
    KV_TTL_S,
    MESSAGE_TYPES,
    Lane,
    Message,
    MessageKind,
    SubjectMap,
)
from waybill_runtime.security.api_tokens import ROLES, Role
from waybill_runtime.settings import describe_settings, env_var_name

if TYPE_CHECKING:
    from waybill_runtime.service import Service

__all__ = [
    "Bucket",
    "Declaration",
    "Partner",
    "Route",
    "RouteAudience",
    "describe",
    "publishable_types",
]

RouteAudience = Literal["partner", "operator", "probe", "public"]
"""Who calls a route: a partner's webhooks, people and their tools, the platform, or anyone
(what a browser needs before signing in: a sign-in page, a stylesheet; it tells nothing)."""


@dataclass(frozen=True)
class Bucket:
    """A KV bucket the service owns, by purpose (the subject map names the bucket).

    Its entries live as long as the contracts say for the purpose (``KV_TTL_S``:
    contacts are personal data, idempotency keys matter for days) unless
    ``ttl_s`` says otherwise; None keeps them until they are deleted.
    """

    purpose: str
    ttl_s: float | Literal["contract"] | None = "contract"

    def __post_init__(self) -> None:
        if self.purpose not in KV_PURPOSES:
            raise ValueError(
                f"no KV purpose {self.purpose!r}: the contracts know {', '.join(KV_PURPOSES)}"
            )
        if self.ttl_s == "contract":
            object.__setattr__(self, "ttl_s", KV_TTL_S.get(self.purpose))

    @property
    def expires_after_s(self) -> float | None:
        assert not isinstance(self.ttl_s, str)  # resolved in __post_init__
        return self.ttl_s


@dataclass(frozen=True)
class Partner:
    """A system outside Waybill that the service talks to, and the settings pointing at it.

    ``settings`` maps a setting of the service to a template of the values the
    partner's side offers (``$url``, ``$api_key``, ...): a sandbox offers them
    in a local run, an operator's secret store in production. ``webhooks`` is
    the path (a template of the same values) the partner posts its webhooks to,
    when it sends any.
    """

    name: str
    settings: Mapping[str, str]
    webhooks: str | None = None

    def setting_values(self, offered: Mapping[str, str]) -> dict[str, str]:
        """The service's settings for a partner that offers ``offered``."""
        return {
            name: _fill(template, offered, self.name) for name, template in self.settings.items()
        }

    def webhook_path(self, offered: Mapping[str, str]) -> str | None:
        return None if self.webhooks is None else _fill(self.webhooks, offered, self.name)


def _fill(template: str, offered: Mapping[str, str], partner: str) -> str:
    try:
        return Template(template).substitute(offered)
    except KeyError as missing:
        raise LookupError(
            f"partner {partner} offers no value {missing.args[0]!r} (it offers "
            f"{', '.join(sorted(offered)) or 'nothing'})"
        ) from None


@dataclass(frozen=True)
class Route:
    """An HTTP route of the service besides the probes every service has.

    The optional types (msgspec structs, or any type msgspec describes) make
    the service's OpenAPI document (:mod:`waybill_runtime.http.openapi`):
    ``request`` the JSON body it reads (a partner's payload), ``response`` the
    JSON it answers on success, ``query`` its query parameters, one per field.

    ``role`` is the least role a caller's bearer token must grant
    (:mod:`waybill_runtime.http.auth`): ``viewer`` to read, ``operator`` to act,
    ``admin`` for anything. Every route people call (audience ``operator``)
    names one; a partner's webhooks keep their own signature checks and need none.

    Pages for people's browsers: ``answers`` is the media type of the success
    answer (``text/html``, ``text/event-stream``); ``form`` says the body is an
    HTML form (``request`` then describes its fields) and the success answer a
    303 redirect; ``sign_in`` is where a browser without a token is sent
    (a GET page), instead of a bare 401.
    """

    method: str
    path: str
    audience: RouteAudience
    summary: str = ""
    request: Any = None
    response: Any = None
    query: type[msgspec.Struct] | None = None
    role: Role | None = None
    answers: str = "application/json"
    form: bool = False
    sign_in: str | None = None

    def __post_init__(self) -> None:
        if self.form and self.method.upper() != "POST":
            raise ValueError(f"{self.method} {self.path}: only a POST takes a form")
        if self.sign_in is not None and (self.method.upper() != "GET" or self.role is None):
            raise ValueError(
                f"{self.method} {self.path}: only a GET page that needs a role sends "
                "browsers to a sign-in page"
            )
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"{self.method} {self.path}: no role {self.role!r}; use {ROLES}")
        if self.audience == "operator" and self.role is None:
            raise ValueError(
                f"{self.method} {self.path} is called by people: declare the role it needs "
                '(role="viewer" to read, "operator" to act, "admin")'
            )
        if self.audience in ("probe", "public") and self.role is not None:
            raise ValueError(
                f"{self.method} {self.path} is a {self.audience} route: those stay open"
            )


# -- the printable declaration --------------------------------------------------------


class ConsumedMessage(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    subject: str
    stream: str
    durable: str
    lane: Lane = Lane.STANDARD
    """Each lane of a type has its subject and durable (see waybill_contracts.lanes)."""


class PublishedMessage(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    subject: str


class OwnedBucket(msgspec.Struct, frozen=True, kw_only=True):
    purpose: str
    bucket: str
    ttl_s: float | None


class DeclaredPartner(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    settings: dict[str, str]
    webhooks: str | None


class DeclaredRoute(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str
    audience: str
    summary: str
    role: str | None = None
    """The least role a caller's token must grant (None: no token, e.g. a partner's webhook)."""


class DeclaredSetting(msgspec.Struct, frozen=True, kw_only=True):
    env_var: str
    required: bool
    default: str | None
    secret: bool
    description: str


class Declaration(msgspec.Struct, frozen=True, kw_only=True):
    """All the mesh needs to know about one service (what `waybill services --json` prints)."""

    name: str
    version: str
    description: str
    settings_type: str
    consumes: list[ConsumedMessage]
    consumes_dead_letters: bool
    new_events_only: bool
    publishes: list[PublishedMessage]
    sends: list[PublishedMessage]
    queries: list[str]
    buckets: list[OwnedBucket]
    partners: list[DeclaredPartner]
    routes: list[DeclaredRoute]
    ports: dict[str, int]
    settings: list[DeclaredSetting]
    secrets: list[str]
    watches_mesh: bool = False
    """It watches the whole mesh: its durables read the whole events/commands streams, it
    records messages no handler settled (JetStream's advisories) as dead letters of the
    service that gave up, and it may list every durable of those streams."""
    replays_dead_letters: bool = False
    """It replays dead letters for operators: it may publish any event or command, read a
    dead letter and the original it points to, and delete the letter."""


def publishable_types(
    service_name: str,
) -> tuple[frozenset[type[Message]], frozenset[type[Message]]]:
    """The events ``service_name`` may publish and the commands it may send, per the contracts."""
    events = frozenset(
        t for t in MESSAGE_TYPES
        if t.kind is MessageKind.EVENT and service_name in getattr(t, "publishers", ())
    )  # fmt: skip
    commands = frozenset(
        t for t in MESSAGE_TYPES
        if t.kind is MessageKind.COMMAND and service_name in getattr(t, "senders", ())
    )  # fmt: skip
    return events, commands


def _published(types: frozenset[type[Message]], subjects: SubjectMap) -> list[PublishedMessage]:
    return sorted(
        (PublishedMessage(type=t.ce_type(), subject=subjects.subject_for(t)) for t in types),
        key=lambda m: m.type,
    )


def describe(service: Service[Any], *, subject_prefix: str = "waybill") -> Declaration:
    """The declaration of ``service``, with subjects under ``subject_prefix``."""
    subjects = SubjectMap(subject_prefix)
    consumes = [
        ConsumedMessage(
            type=t.ce_type(),
            subject=subjects.on_lane(subjects.subject_for(t), lane),
            stream=getattr(subjects, f"{stream_key}_stream").name,
            durable=subjects.durable(service.name, stream_key, lane),
            lane=lane,
        )
        for stream_key, types in service.types_by_stream().items()
        for t in types
        for lane in service.lanes()
    ]
    settings = [
        DeclaredSetting(
            env_var=info.env_var,
            required=info.required,
            default=None if info.secret else info.default,
            secret=info.secret,
            description=info.description,
        )
        for info in describe_settings(service.settings_type)
    ]
    http_port = next(
        (int(s.default) for s in settings if s.env_var == env_var_name("http_port") and s.default),
        0,
    )
    return Declaration(
        name=service.name,
        version=service.version,
        description=service.description,
        settings_type=f"{service.settings_type.__module__}.{service.settings_type.__qualname__}",
        consumes=sorted(consumes, key=lambda c: c.type),
        consumes_dead_letters=service.dead_letter_handler is not None,
        new_events_only=service.new_events_only,
        watches_mesh=service.watches_mesh,
        replays_dead_letters=service.replays_dead_letters,
        publishes=_published(service.publishes, subjects),
        sends=_published(service.sends, subjects),
        queries=sorted(service.query_names()),
        buckets=[
            OwnedBucket(
                purpose=b.purpose, bucket=subjects.kv_bucket(b.purpose), ttl_s=b.expires_after_s
            )
            for b in service.buckets
        ],
        partners=[
            DeclaredPartner(name=p.name, settings=dict(p.settings), webhooks=p.webhooks)
            for p in service.partners
        ],
        routes=[
            DeclaredRoute(
                method=r.method, path=r.path, audience=r.audience, summary=r.summary, role=r.role
            )
            for r in service.declared_routes
        ],
        ports={"http": http_port},
        settings=settings,
        secrets=[s.env_var for s in settings if s.secret],
    )


def check_routes(service_name: str, declared: Sequence[Route], served: Sequence[Any]) -> None:
    """Refuse to serve a route the declaration does not name, or miss one it does.

    The declaration is what NetworkPolicies, Helm values and the docs are made
    from; a route served but not declared would be invisible to all of them.
    """
    wanted = {(r.method.upper(), r.path) for r in declared}
    serving = {(str(r.method).upper(), str(r.path)) for r in served}
    undeclared = sorted(serving - wanted)
    missing = sorted(wanted - serving)
    if undeclared or missing:
        parts = []
        if undeclared:
            parts.append("serves undeclared " + ", ".join(f"{m} {p}" for m, p in undeclared))
        if missing:
            parts.append("declares but does not serve " + ", ".join(f"{m} {p}" for m, p in missing))
        raise ValueError(f"{service_name} {'; '.join(parts)}: keep routes= in its Service true")
