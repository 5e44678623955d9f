"""Export the contracts for other teams and tools: JSON Schema and AsyncAPI 3.0.

One JSON Schema (draft 2020-12) per message type, named after its
``ce-type``, and one AsyncAPI 3.0 document in which channels are subjects,
messages are the contracts and the CloudEvents headers are message headers.
"""

from __future__ import annotations

import inspect
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import msgspec

from waybill_contracts import envelope
from waybill_contracts.catalog import MESSAGE_TYPES
from waybill_contracts.examples import EXAMPLE_TIME, EXAMPLES
from waybill_contracts.messages import Command, Event, Message, QueryRequest, QueryResponse
from waybill_contracts.subjects import SubjectMap

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
_HEADERS_SCHEMA = "CloudEventsHeaders"
_SCHEMA_REF = "#/components/schemas/{name}"

Json = dict[str, Any]


def _package_version() -> str:
    try:
        return version("waybill-contracts")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def _tidy_descriptions(definitions: dict[str, Json]) -> None:
    # msgspec copies class docstrings verbatim, indentation included.
    for definition in definitions.values():
        if "description" in definition:
            definition["description"] = inspect.cleandoc(definition["description"])


def _summary(message_type: type[Message]) -> str:
    return inspect.cleandoc(message_type.__doc__ or message_type.__name__).splitlines()[0]


def message_schemas(subjects: SubjectMap) -> dict[str, Json]:
    """A standalone JSON Schema per message type, keyed by ``ce-type``."""
    schemas: dict[str, Json] = {}
    for message_type in MESSAGE_TYPES:
        ce_type = subjects.ce_type_for(message_type)
        schema = msgspec.json.schema(message_type)
        _tidy_descriptions(schema.get("$defs", {}))
        schemas[ce_type] = {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:waybill:contracts:{ce_type}",
            "title": ce_type,
            "description": _summary(message_type),
            "x-waybill-subject": subjects.subject_for(message_type),
            **schema,
        }
    return schemas


def _headers_schema() -> Json:
    text: Json = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "description": "CloudEvents 1.0 NATS binding, binary mode; values percent-encoded.",
        "properties": {
            envelope.HEADER_SPEC_VERSION: {"type": "string", "const": envelope.SPEC_VERSION},
            envelope.HEADER_ID: {**text, "description": "Message id; equals Nats-Msg-Id."},
            envelope.HEADER_SOURCE: {**text, "description": "waybill/<service>"},
            envelope.HEADER_TYPE: {**text, "description": "The message type."},
            envelope.HEADER_TIME: {"type": "string", "format": "date-time"},
            envelope.HEADER_SUBJECT: {**text, "description": "Business key."},
            envelope.HEADER_CORRELATION_ID: {**text, "description": "Business transaction."},
            envelope.HEADER_CAUSATION_ID: {**text, "description": "ce-id of the cause."},
            envelope.HEADER_DATA_CONTENT_TYPE: {"type": "string", "const": envelope.CONTENT_TYPE},
            envelope.HEADER_TRACEPARENT: {"type": "string", "description": "W3C traceparent."},
            envelope.HEADER_TRACESTATE: {"type": "string", "description": "W3C tracestate."},
            envelope.HEADER_NATS_MSG_ID: {**text, "description": "JetStream de-duplication."},
        },
        "required": [
            envelope.HEADER_SPEC_VERSION,
            envelope.HEADER_ID,
            envelope.HEADER_SOURCE,
            envelope.HEADER_TYPE,
            envelope.HEADER_TIME,
        ],
    }


def _example(message: Message, subjects: SubjectMap) -> Json:
    ce_type = subjects.ce_type_for(type(message))
    context = envelope.new_context(
        message,
        source="example",
        message_id=envelope.fact_id("example", ce_type),
        time=EXAMPLE_TIME,
    )
    encoded = envelope.encode(message, context, subjects)
    return {
        "name": "example",
        "headers": encoded.headers,
        "payload": msgspec.json.decode(encoded.body),
    }


def _message(message_type: type[Message], subjects: SubjectMap, payload_ref: str) -> Json:
    ce_type = subjects.ce_type_for(message_type)
    message: Json = {
        "name": message_type.__name__,
        "title": ce_type,
        "summary": _summary(message_type),
        "contentType": envelope.CONTENT_TYPE,
        "headers": {
            "allOf": [
                {"$ref": _SCHEMA_REF.format(name=_HEADERS_SCHEMA)},
                {"type": "object", "properties": {envelope.HEADER_TYPE: {"const": ce_type}}},
            ]
        },
        "payload": {"$ref": payload_ref},
        "correlationId": {"location": f"$message.header#/{envelope.HEADER_CORRELATION_ID}"},
        "examples": [_example(EXAMPLES[message_type], subjects)],
    }
    description = inspect.cleandoc(message_type.__doc__ or "")
    if description != message["summary"]:
        message["description"] = description
    return message


def asyncapi_document(subjects: SubjectMap) -> Json:
    """The AsyncAPI 3.0 document of the whole mesh, for one subject prefix."""
    refs, components = msgspec.json.schema_components(MESSAGE_TYPES, ref_template=_SCHEMA_REF)
    _tidy_descriptions(components)
    components[_HEADERS_SCHEMA] = _headers_schema()
    messages: Json = {}
    channels: Json = {}
    operations: Json = {}
    for message_type, ref in zip(MESSAGE_TYPES, refs, strict=True):
        name = message_type.__name__
        messages[name] = _message(message_type, subjects, ref["$ref"])
        subject = subjects.subject_for(message_type)
        channel_id = subject.removeprefix(f"{subjects.prefix}.")
        if issubclass(message_type, QueryResponse):
            channel_id += ".reply"
            subject_or_inbox: str | None = None  # the requester's inbox, unknown in advance
        else:
            subject_or_inbox = subject
        channels[channel_id] = {
            "address": subject_or_inbox,
            "title": subject_or_inbox or f"reply to {subject}",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operation = _operation(message_type, channel_id, name)
        if operation is not None:
            operations[name] = operation
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Waybill messages",
            "version": _package_version(),
            "description": "Events, commands and queries of the Waybill integration mesh. "
            "Bodies are JSON; headers follow the CloudEvents 1.0 NATS binding (binary mode).",
        },
        "defaultContentType": envelope.CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components, "messages": messages},
    }


def _operation(message_type: type[Message], channel_id: str, name: str) -> Json | None:
    channel = {"$ref": f"#/channels/{channel_id}"}
    message = [{"$ref": f"#/channels/{channel_id}/messages/{name}"}]
    if issubclass(message_type, Event):
        # Seen from the publishing services: they send the fact.
        return {
            "action": "send",
            "channel": channel,
            "messages": message,
            "summary": _summary(message_type),
            "x-waybill-services": [str(service) for service in message_type.publishers],
        }
    if issubclass(message_type, Command | QueryRequest):
        # Seen from the owning service: it receives the command or question.
        operation: Json = {
            "action": "receive",
            "channel": channel,
            "messages": message,
            "summary": _summary(message_type),
            "x-waybill-services": [str(message_type.service)],
        }
        if issubclass(message_type, Command):
            operation["x-waybill-senders"] = [str(service) for service in message_type.senders]
        if issubclass(message_type, QueryRequest):
            reply_id = f"{channel_id}.reply"
            reply_name = message_type.response_type.__name__
            operation["reply"] = {
                "channel": {"$ref": f"#/channels/{reply_id}"},
                "messages": [{"$ref": f"#/channels/{reply_id}/messages/{reply_name}"}],
            }
        return operation
    return None  # responses are covered by their request's reply


def export(directory: Path, subjects: SubjectMap) -> list[Path]:
    """Write ``schemas/<ce-type>.json`` and ``asyncapi.json`` under ``directory``."""
    schema_dir = directory / "schemas"
    schema_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for ce_type, schema in message_schemas(subjects).items():
        written.append(_write_json(schema_dir / f"{ce_type}.json", schema))
    written.append(_write_json(directory / "asyncapi.json", asyncapi_document(subjects)))
    return written


def _write_json(path: Path, document: Json) -> Path:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    return path
