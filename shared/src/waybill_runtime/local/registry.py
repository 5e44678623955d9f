"""Which services and sandboxes are installed: the ``waybill.services`` and ``waybill.sandboxes``
entry-point groups.

A service package declares its :class:`~waybill_runtime.service.Service` in its pyproject::

    [project.entry-points."waybill.services"]
    my-service = "waybill_my_service.app:service"

and a sandbox package each of its sandbox declarations (see
``waybill_sandboxes.declarations``). `waybill run`, `waybill up`,
`waybill services` and the test mesh find them this way, so adding a service
or a sandbox needs no change here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol

from waybill_runtime.errors import UserFacingError
from waybill_runtime.service import Service

SERVICE_GROUP = "waybill.services"
SANDBOX_GROUP = "waybill.sandboxes"


class SandboxPlan(Protocol):
    """What a sandbox is told by the local stack (``LocalPlan`` satisfies it)."""

    @property
    def host(self) -> str: ...

    def port(self, sandbox: str, name: str) -> int: ...

    def secret(self, sandbox: str, name: str) -> str: ...

    def webhook_url(self, partner: str) -> str | None: ...


class SandboxDeclaration(Protocol):
    """How one sandbox is started and what it offers (declared by the sandbox's package)."""

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def partners(self) -> tuple[str, ...]: ...

    @property
    def ports(self) -> tuple[str, ...]: ...

    @property
    def new_secrets(self) -> Callable[[], dict[str, str]]: ...

    @property
    def offers(self) -> Callable[[Any], dict[str, dict[str, str]]]: ...

    @property
    def pages(self) -> Callable[[Any], dict[str, str]]: ...

    def argv(self, plan: Any) -> list[str]: ...

    def environment(self, plan: Any) -> dict[str, str]:
        """Its environment: the secrets and secret-bearing URLs, kept off its command line."""
        ...


def installed_services() -> list[str]:
    """Names of the installed services, sorted."""
    return sorted({ep.name for ep in entry_points(group=SERVICE_GROUP)})


def service_named(name: str) -> Service[Any]:
    """The declaration of service ``name``; a one-line error when it is not installed."""
    for ep in entry_points(group=SERVICE_GROUP):
        if ep.name == name:
            service = ep.load()
            if not isinstance(service, Service):
                raise UserFacingError(
                    f"the entry point of service {name!r} ({ep.value}) is not a Service: "
                    "point it at the module's `service` object"
                )
            return service
    known = ", ".join(installed_services()) or "none are installed yet"
    raise UserFacingError(f"unknown service {name!r}: the services are {known}")


def load_services(names: list[str] | None = None) -> dict[str, Service[Any]]:
    """The declarations of ``names`` (default: every installed service), by name."""
    return {name: service_named(name) for name in (names or installed_services())}


def service_main(name: str) -> Callable[[], int]:
    """The entry function of service ``name`` (what `waybill run` calls)."""
    return service_named(name).main


def installed_sandboxes() -> Mapping[str, SandboxDeclaration]:
    """Every installed sandbox declaration, by name (empty when no sandbox is installed)."""
    found: dict[str, SandboxDeclaration] = {}
    for ep in sorted(entry_points(group=SANDBOX_GROUP), key=lambda ep: ep.name):
        found[ep.name] = ep.load()
    return found
