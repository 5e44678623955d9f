"""The local stack's plan, made from the declarations: ports, secrets, and who talks to whom.

Every process gets a free port on 127.0.0.1. Each service's partner
settings are filled from what the sandbox standing in for that partner
offers; each sandbox posts its webhooks to the path the service that owns
the partner declares. Secrets are fresh for every run and reach every process
through its environment, never its command line (which any local user can
read in ``ps``). Services are told they run in a local stack
(``WAYBILL_LOCAL_STACK``). Every service trusts the local API signing key
(its JWKS, issuer and audience), so its protected routes answer the tokens
`waybill up` prints. Nothing here names a service or a sandbox: `waybill up`
and the test mesh both run from this plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from waybill_runtime.declaration import Partner
from waybill_runtime.local.ports import free_port
from waybill_runtime.local.registry import SandboxDeclaration
from waybill_runtime.security.local_api_keys import LocalApiKeys
from waybill_runtime.service import Service
from waybill_runtime.settings import env_var_name

LOCAL = "127.0.0.1"


@dataclass(frozen=True)
class ChildSpec:
    """One process of the local stack."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # host:port the process listens on once it is up (checked before going on)
    listens_on: tuple[str, int] | None = None


@dataclass
class LocalPlan:
    """Where every sandbox and service of one local stack listens, and what each is told."""

    services: Mapping[str, Service[Any]]
    sandboxes: Mapping[str, SandboxDeclaration]
    host: str = LOCAL
    sandbox_ports: dict[tuple[str, str], int] = field(default_factory=dict)
    service_ports: dict[str, int] = field(default_factory=dict)
    # The HTTP ports of each service's further replicas (the first has service_ports').
    replica_ports: dict[str, list[int]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    # The key API tokens are signed with (None: services get no key source, and
    # one with protected routes refuses to start).
    api_keys: LocalApiKeys | None = None

    @classmethod
    def make(
        cls,
        services: Mapping[str, Service[Any]],
        sandboxes: Mapping[str, SandboxDeclaration],
        *,
        allocate: Callable[[], int] = free_port,
        api_keys: LocalApiKeys | None = None,
        replicas: int = 1,
    ) -> LocalPlan:
        """A plan with a free port for every listener and fresh secrets for every sandbox;
        ``replicas`` instances of every service, each its own HTTP port."""
        return cls(
            services=services,
            sandboxes=sandboxes,
            api_keys=api_keys,
            sandbox_ports={
                (sandbox.name, port): allocate()
                for sandbox in sandboxes.values()
                for port in sandbox.ports
            },
            service_ports={name: allocate() for name in services},
            replica_ports={name: [allocate() for _ in range(replicas - 1)] for name in services},
            secrets={sandbox.name: sandbox.new_secrets() for sandbox in sandboxes.values()},
        )

    # -- what sandboxes ask (waybill_sandboxes.declarations.LocalPlan) ----------------------

    def port(self, sandbox: str, name: str) -> int:
        return self.sandbox_ports[(sandbox, name)]

    def secret(self, sandbox: str, name: str) -> str:
        return self.secrets[sandbox][name]

    def webhook_url(self, partner: str) -> str | None:
        """Where ``partner``'s webhooks go: the declared path of the service that owns it."""
        for name, service in self.services.items():
            for declared in service.partners:
                if declared.name == partner and declared.webhooks is not None:
                    path = declared.webhook_path(self.offered(partner))
                    return f"{self.service_url(name)}{path}"
        return None

    # -- what services are told -----------------------------------------------------------

    def service_port(self, name: str) -> int:
        return self.service_ports[name]

    def service_url(self, name: str) -> str:
        return f"http://{self.host}:{self.service_ports[name]}"

    def sandbox_for(self, partner: str) -> SandboxDeclaration | None:
        """The sandbox standing in for ``partner`` (None: none is installed)."""
        return next((s for s in self.sandboxes.values() if partner in s.partners), None)

    def offered(self, partner: str) -> dict[str, str]:
        """The values the sandbox standing in for ``partner`` offers (empty: no sandbox)."""
        sandbox = self.sandbox_for(partner)
        return {} if sandbox is None else sandbox.offers(self).get(partner, {})

    def _partner_settings(self, partner: Partner) -> dict[str, str]:
        offered = self.offered(partner.name)
        # Without a sandbox the service keeps its own defaults (or says what it misses).
        return partner.setting_values(offered) if offered else {}

    def service_settings(self, name: str) -> dict[str, str]:
        """Service ``name``'s settings in this stack, by field name, as text."""
        service = self.services[name]
        settings = {
            "http_host": self.host,
            "http_port": str(self.service_ports[name]),
            "local_stack": "true",
        }
        if self.api_keys is not None:
            settings.update(self.api_keys.settings())
        for partner in service.partners:
            settings.update(self._partner_settings(partner))
        settings.update(service.local_settings)
        return settings

    def service_environment(self, name: str) -> dict[str, str]:
        """The environment variables service ``name`` is started with."""
        environment = {env_var_name("service"): name}
        for setting, value in self.service_settings(name).items():
            environment[env_var_name(setting)] = value
        return environment

    def replica_urls(self, name: str) -> list[str]:
        """The base URL of every instance of service ``name``, the first one's first."""
        ports = [self.service_ports[name], *self.replica_ports.get(name, [])]
        return [f"http://{self.host}:{port}" for port in ports]

    def replica_environment(self, name: str, replica: int) -> dict[str, str]:
        """The environment of instance ``replica`` (0: the first) of service ``name``: the
        same as the first's but for its HTTP port; partners' webhooks go to the first."""
        environment = self.service_environment(name)
        if replica:
            environment[env_var_name("http_port")] = str(self.replica_ports[name][replica - 1])
        return environment

    # -- the processes ----------------------------------------------------------------

    def sandbox_children(self) -> list[ChildSpec]:
        """One process per sandbox (secrets in its environment); each is waited for on its
        first port."""
        return [
            ChildSpec(
                name=sandbox.title,
                argv=sandbox.argv(self),
                env=sandbox.environment(self),
                listens_on=(self.host, self.port(sandbox.name, sandbox.ports[0])),
            )
            for sandbox in self.sandboxes.values()
        ]

    def sandbox_pages(self) -> dict[str, str]:
        """What each sandbox shows a person, by label."""
        pages: dict[str, str] = {}
        for sandbox in self.sandboxes.values():
            pages.update(sandbox.pages(self))
        return pages
