"""Which services are installed: the `waybill.services` entry-point group.

A service package declares, in its pyproject::

    [project.entry-points."waybill.services"]
    orchestrator = "waybill_orchestrator.app:main"

where ``main`` is a function with no arguments that runs the service (reading
its settings from the environment) and returns the exit code. `waybill run`
and `waybill up` find services this way, so adding a service needs no change
here.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from waybill_runtime.errors import UserFacingError

SERVICE_GROUP = "waybill.services"


def installed_services() -> list[str]:
    """Names of the installed services, sorted."""
    return sorted({ep.name for ep in entry_points(group=SERVICE_GROUP)})


def service_main(name: str) -> Callable[[], int]:
    """The entry function of service ``name``; a one-line error when it is not installed."""
    for ep in entry_points(group=SERVICE_GROUP):
        if ep.name == name:
            main: Callable[[], int] = ep.load()
            return main
    known = ", ".join(installed_services()) or "none are installed yet"
    raise UserFacingError(f"unknown service {name!r}: the services are {known}")
