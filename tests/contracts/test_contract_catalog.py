"""The catalog lists every message type exactly once, each with a well-formed identity."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import waybill_contracts
from waybill_contracts import (
    MESSAGE_TYPES,
    Command,
    Event,
    Message,
    MessageKind,
    QueryRequest,
    QueryResponse,
    Service,
    SubjectMap,
    UnknownType,
    ce_type_for,
    events,
    message_type_for_ce_type,
)
from waybill_contracts.catalog import _index_by_ce_type
from waybill_contracts.events.returns import ReturnEvent
from waybill_contracts.examples import EXAMPLES, example_of
from waybill_contracts.operations import OrderAction
from waybill_contracts.return_commands import ReturnCommand

EVENT_CE_TYPE = re.compile(r"io\.waybill\.[a-z][a-z_]*\.[a-z][a-z_]*\.v[1-9][0-9]*")
COMMAND_CE_TYPE = re.compile(r"io\.waybill\.cmd\.[a-z][a-z_]*\.[a-z][a-z_]*\.v[1-9][0-9]*")
QUERY_CE_TYPE = re.compile(
    r"io\.waybill\.qry\.[a-z][a-z-]*\.[a-z][a-z_]*\.(request|response)\.v[1-9][0-9]*"
)


# OrderAction: the fields every operator action shares; ReturnEvent and ReturnCommand: the
# return id every return message carries. Not messages of their own.
_BASES = {
    Message,
    Event,
    Command,
    QueryRequest,
    QueryResponse,
    OrderAction,
    ReturnEvent,
    ReturnCommand,
}


def _message_types_defined_in_the_package() -> set[type]:
    found: set[type] = set()
    for info in pkgutil.walk_packages(waybill_contracts.__path__, "waybill_contracts."):
        module = importlib.import_module(info.name)
        found |= {
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Message)
            and value not in _BASES
            and value.__module__ == module.__name__
        }
    return found


def test_every_message_type_defined_is_in_the_catalog_exactly_once() -> None:
    assert len(MESSAGE_TYPES) == len(set(MESSAGE_TYPES))
    assert set(MESSAGE_TYPES) == _message_types_defined_in_the_package()


def test_the_catalog_covers_the_flows_of_the_design() -> None:
    names = {t.__name__ for t in MESSAGE_TYPES}
    flows = {
        # events
        "OrderReleased", "OrderCancelled", "WarehouseOrderAccepted", "WarehouseOrderPicked",
        "WarehouseOrderPacked", "WarehouseOrderShortPicked", "InventoryAdjusted",
        "ShipmentBooked", "ShipmentBookingFailed", "ShipmentVoided", "MilestoneReached",
        "NotificationSent", "NotificationFailed", "ExceptionRaised", "ProductsChanged",
        "InventorySnapshotTaken",
        # commands
        "ReleaseToWarehouse", "CancelWarehouseOrder", "BookShipment", "VoidShipment",
        "RecordShipmentInOdoo", "RecordDeliveryInOdoo", "PostExceptionInOdoo", "SyncProducts",
        "PostNoteInOdoo",
        # 1.1: the WMS's shipped stage, refused compensations
        "WarehouseOrderShipped", "WarehouseOrderCancelRefused", "ShipmentVoidRefused",
        # queries
        "OrderStatusRequest", "OrderStatusResponse",
    }  # fmt: skip
    assert flows <= names


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_ce_type_follows_the_naming_rule_of_its_kind(message_type: type[Message]) -> None:
    ce_type = ce_type_for(message_type)
    if issubclass(message_type, Event):
        assert message_type.kind is MessageKind.EVENT
        assert EVENT_CE_TYPE.fullmatch(ce_type)
        assert message_type.publishers
        assert all(isinstance(service, Service) for service in message_type.publishers)
    elif issubclass(message_type, Command):
        assert message_type.kind is MessageKind.COMMAND
        assert COMMAND_CE_TYPE.fullmatch(ce_type)
        assert isinstance(message_type.service, Service)
        assert message_type.senders, f"{message_type.__name__} declares no sender"
        assert all(isinstance(service, Service) for service in message_type.senders)
        assert message_type.service not in message_type.senders  # nobody commands itself
    else:
        assert issubclass(message_type, QueryRequest | QueryResponse)
        assert message_type.kind is MessageKind.QUERY
        assert QUERY_CE_TYPE.fullmatch(ce_type)
    assert message_type_for_ce_type(ce_type) is message_type


def test_every_query_request_names_a_response_of_the_same_query() -> None:
    requests = [t for t in MESSAGE_TYPES if issubclass(t, QueryRequest)]
    assert requests
    for request in requests:
        response = request.response_type
        assert response in MESSAGE_TYPES
        assert (response.service, response.name) == (request.service, request.name)


def test_class_metadata_is_not_shadowed_by_a_field() -> None:
    for message_type in MESSAGE_TYPES:
        assert not {"kind", "name", "version"} & set(message_type.__struct_fields__)
        assert isinstance(message_type.name, str)
        assert isinstance(message_type.version, int)


def test_two_types_claiming_one_ce_type_are_refused() -> None:
    with pytest.raises(TypeError, match=r"io\.waybill\.order\.released\.v1 is claimed by both"):
        _index_by_ce_type((events.OrderReleased, events.OrderReleased))


def test_unknown_ce_type_raises_the_typed_error_naming_the_header() -> None:
    with pytest.raises(UnknownType) as caught:
        message_type_for_ce_type("io.waybill.order.teleported.v1")
    assert caught.value.field == "ce-type"
    assert "io.waybill.order.teleported.v1" in str(caught.value)


def test_a_python_type_outside_the_catalog_has_no_ce_type() -> None:
    with pytest.raises(UnknownType, match="not a message type"):
        ce_type_for(Event)


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_every_message_has_an_example_with_a_business_key(message_type: type[Message]) -> None:
    example = example_of(message_type)
    assert type(example) is message_type
    assert example.business_key()
    assert example.correlation_key()


def test_examples_exist_for_exactly_the_catalog() -> None:
    assert set(EXAMPLES) == set(MESSAGE_TYPES)
    with pytest.raises(UnknownType):
        example_of(Message)


def test_shipment_messages_correlate_by_order_not_by_shipment() -> None:
    booked = example_of(events.ShipmentBooked)
    assert booked.business_key() == booked.shipment.shipment_id
    assert booked.correlation_key() == booked.shipment.order_ref


def test_the_contracts_guide_lists_every_message_and_its_subject() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "contracts.md").read_text()
    subjects = SubjectMap()
    for message_type in MESSAGE_TYPES:
        assert f"`{message_type.__name__}`" in guide, message_type.__name__
        assert f"`{subjects.subject_for(message_type)}`" in guide, message_type.__name__
