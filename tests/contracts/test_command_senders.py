"""Commands declare the services that send them, and the services send nothing else.

The source of every service is read (not imported): a service that builds a
command it is not a declared sender of fails here, before NATS permissions or
a reviewer would notice. The end-to-end test checks the same on the bus.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from waybill_contracts import MESSAGE_TYPES, Command, Service
from waybill_contracts.operations import OPERATOR_COMMAND_TYPES

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
COMMANDS: dict[str, type[Command]] = {
    t.__name__: t for t in MESSAGE_TYPES if issubclass(t, Command)
}


def _sources(service: Service) -> Iterator[Path]:
    package = SERVICES_DIR / str(service) / "src" / f"waybill_{service.replace('-', '_')}"
    yield from sorted(package.rglob("*.py"))


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def commands_built_by(service: Service) -> set[type[Command]]:
    """The command types a service constructs anywhere in its code: the ones it sends."""
    built: set[type[Command]] = set()
    for path in _sources(service):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and _called_name(node) in COMMANDS:
                built.add(COMMANDS[_called_name(node) or ""])
    return built


@pytest.mark.parametrize("service", list(Service), ids=str)
def test_a_service_sends_only_commands_that_name_it_a_sender(service: Service) -> None:
    undeclared = {c.__name__ for c in commands_built_by(service) if service not in c.senders}
    assert not undeclared, f"{service} sends {sorted(undeclared)} without being a sender"


def test_the_scan_sees_the_commands_the_orchestrator_sends() -> None:
    # Guards the scan itself: if it stopped finding calls, the test above would pass vacuously.
    built = {c.__name__ for c in commands_built_by(Service.ORCHESTRATOR)}
    assert {
        "ReleaseToWarehouse",
        "CancelWarehouseOrder",
        "BookShipment",
        "VoidShipment",
        "RecordShipmentInOdoo",
        "RecordDeliveryInOdoo",
        "PostExceptionInOdoo",
        "PostNoteInOdoo",
    } <= built
    # The auditor sends only what operators ask from the control tower (some through the
    # action's kind, which the scan does not follow).
    assert set() < commands_built_by(Service.AUDITOR) <= set(OPERATOR_COMMAND_TYPES)


def test_every_command_has_a_sender_other_than_its_owner() -> None:
    for command in COMMANDS.values():
        assert command.senders, command.__name__
        assert command.service not in command.senders, command.__name__
