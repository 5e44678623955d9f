"""The exported JSON Schemas and AsyncAPI document describe the real wire format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from waybill_contracts import MESSAGE_TYPES, Command, Message, SubjectMap, encode, new_context
from waybill_contracts.examples import example_of
from waybill_contracts.governance import asyncapi_document, export, message_schemas
from waybill_contracts.messages import QueryResponse

SUBJECTS = SubjectMap()
SCHEMAS = message_schemas(SUBJECTS)
ASYNCAPI = asyncapi_document(SUBJECTS)


def _body(message: Message) -> Any:
    encoded = encode(message, new_context(message, source="test"), SUBJECTS)
    return msgspec.json.decode(encoded.body)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/")
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_export_writes_a_schema_per_message_and_one_asyncapi_document(tmp_path: Path) -> None:
    written = export(tmp_path / "out", SUBJECTS)
    assert len(written) == len(MESSAGE_TYPES) + 1
    names = sorted(p.name for p in (tmp_path / "out" / "schemas").iterdir())
    assert names == sorted(f"{SUBJECTS.ce_type_for(t)}.json" for t in MESSAGE_TYPES)
    document = msgspec.json.decode((tmp_path / "out" / "asyncapi.json").read_bytes())
    assert document == msgspec.json.decode(msgspec.json.encode(ASYNCAPI))


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_each_json_schema_is_valid_and_accepts_the_encoded_message(
    message_type: type[Message],
) -> None:
    schema = SCHEMAS[SUBJECTS.ce_type_for(message_type)]
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    body = _body(example_of(message_type))
    validator.validate(body)
    required = schema["$defs"][message_type.__name__]["required"]
    if required:
        broken = {k: v for k, v in body.items() if k != required[0]}
        assert not validator.is_valid(broken)


def test_json_schemas_carry_field_documentation() -> None:
    schema = SCHEMAS["io.waybill.order.released.v1"]
    order = schema["$defs"]["Order"]
    assert order["properties"]["ref"]["description"].startswith("Waybill's order reference")
    assert order["description"].startswith("An outgoing order")
    assert schema["x-waybill-subject"] == "waybill.evt.order.released.v1"
    assert "\n    " not in order["description"]


def test_asyncapi_channels_are_exactly_the_subject_map() -> None:
    assert ASYNCAPI["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in ASYNCAPI["channels"].values() if c["address"]}
    assert addresses == {channel.subject for channel in SUBJECTS.channels}
    replies = [c for c in ASYNCAPI["channels"].values() if c["address"] is None]
    assert len(replies) == sum(issubclass(t, QueryResponse) for t in MESSAGE_TYPES)


def test_asyncapi_messages_are_the_contracts_with_cloudevents_headers() -> None:
    messages = ASYNCAPI["components"]["messages"]
    assert set(messages) == {t.__name__ for t in MESSAGE_TYPES}
    headers = ASYNCAPI["components"]["schemas"]["CloudEventsHeaders"]
    assert set(headers["required"]) == {
        "ce-specversion",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-time",
    }
    assert {
        "ce-correlationid",
        "ce-causationid",
        "ce-datacontenttype",
        "traceparent",
        "Nats-Msg-Id",
    } <= set(headers["properties"])
    for message_type in MESSAGE_TYPES:
        message = messages[message_type.__name__]
        ce_type = SUBJECTS.ce_type_for(message_type)
        assert message["headers"]["allOf"][1]["properties"]["ce-type"]["const"] == ce_type
        assert _resolve(ASYNCAPI, message["payload"]["$ref"])["title"] == message_type.__name__


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_asyncapi_examples_validate_against_their_own_schemas(
    message_type: type[Message],
) -> None:
    message = ASYNCAPI["components"]["messages"][message_type.__name__]
    (example,) = message["examples"]
    root = {"components": ASYNCAPI["components"]}
    payload_schema = {**root, "$ref": message["payload"]["$ref"]}
    headers_schema = {**root, **message["headers"]}
    jsonschema.Draft202012Validator(payload_schema).validate(example["payload"])
    jsonschema.Draft202012Validator(headers_schema).validate(example["headers"])
    assert example["payload"] == _body(example_of(message_type))


def test_asyncapi_operation_references_all_resolve() -> None:
    operations = ASYNCAPI["operations"]
    assert operations
    for operation in operations.values():
        assert operation["action"] in {"send", "receive"}
        refs = [operation["channel"]["$ref"], *(m["$ref"] for m in operation["messages"])]
        if "reply" in operation:
            reply = operation["reply"]
            refs += [reply["channel"]["$ref"], *(m["$ref"] for m in reply["messages"])]
        for ref in refs:
            assert _resolve(ASYNCAPI, ref) is not None


def test_asyncapi_names_who_executes_and_who_sends_each_command() -> None:
    operations = ASYNCAPI["operations"]
    for message_type in MESSAGE_TYPES:
        if issubclass(message_type, Command):
            operation = operations[message_type.__name__]
            assert operation["x-waybill-services"] == [str(message_type.service)]
            assert operation["x-waybill-senders"] == [str(s) for s in message_type.senders]
    assert operations["PostNoteInOdoo"]["x-waybill-senders"] == ["orchestrator"]
    assert "x-waybill-senders" not in operations["OrderReleased"]


def test_asyncapi_reflects_the_prefix() -> None:
    staging = asyncapi_document(SubjectMap("staging"))
    addresses = {c["address"] for c in staging["channels"].values() if c["address"]}
    assert all(address.startswith("staging.") for address in addresses)
