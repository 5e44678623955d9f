"""The OpenAPI 3.1 document made from a service's declaration, and served at /openapi.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import aiohttp
import msgspec
import pytest
from aiohttp import test_utils
from nats.aio.client import Client as NatsClient
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from tests.runtime import example_service
from waybill_runtime.declaration import Route
from waybill_runtime.http import PROBLEM_CONTENT_TYPE, create_http_app
from waybill_runtime.http.openapi import openapi_document, openapi_path
from waybill_runtime.local.ports import free_port
from waybill_runtime.local.registry import load_services
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.testing.services import running_service
from waybill_runtime.testing.tokens import api_keys, trusting

PROBES = {"/healthz", "/readyz", "/metrics", "/openapi.json"}


class Parcel(msgspec.Struct, frozen=True):
    weight_kg: Annotated[float, msgspec.Meta(gt=0)]


class Delivery(msgspec.Struct, frozen=True):
    parcels: list[Parcel]


class Booked(msgspec.Struct, frozen=True):
    label: str


class ParcelsQuery(msgspec.Struct, frozen=True, kw_only=True):
    depot: Annotated[str, msgspec.Meta(description="Only this depot's parcels.")]
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10


def _document(*routes: Route) -> dict[str, Any]:
    return openapi_document(service="parcel-desk", version="1.2.0", routes=routes)


@pytest.mark.parametrize("name", sorted(load_services()))
def test_every_installed_service_document_is_valid_openapi_3_1(name: str) -> None:
    document = load_services()[name].openapi()
    validate(document, cls=OpenAPIV31SpecValidator)  # raises, naming what is wrong
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) >= PROBES
    declared = {
        (r.method.lower(), openapi_path(r.path)) for r in load_services()[name].declared_routes
    }
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        if path not in PROBES
        for method in item
    }
    assert documented == declared


def test_an_aiohttp_path_pattern_becomes_a_required_path_parameter() -> None:
    document = _document(
        Route("GET", "/orders/{ref:.+}/timeline", "operator", "a timeline", role="viewer")
    )
    operation = document["paths"]["/orders/{ref}/timeline"]["get"]
    assert operation["parameters"] == [
        {
            "name": "ref",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        }
    ]
    assert operation["responses"]["404"]["content"][PROBLEM_CONTENT_TYPE]
    assert openapi_path(r"/parcels/{id:\d{3}}/{part}") == "/parcels/{id}/{part}"


def test_the_fields_of_a_query_type_become_query_parameters() -> None:
    document = _document(Route("GET", "/parcels", "operator", query=ParcelsQuery, role="viewer"))
    parameters = {p["name"]: p for p in document["paths"]["/parcels"]["get"]["parameters"]}
    assert parameters["depot"] == {
        "name": "depot",
        "in": "query",
        "required": True,
        "description": "Only this depot's parcels.",
        "schema": {"type": "string"},
    }
    assert parameters["limit"]["required"] is False
    assert parameters["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 50,
        "default": 10,
    }
    validate(document, cls=OpenAPIV31SpecValidator)


def test_request_and_response_types_are_json_schemas_shared_under_components() -> None:
    document = _document(
        Route("POST", "/webhooks/desk", "partner", "desk webhooks", request=Delivery),
        Route("GET", "/labels", "operator", response=Booked, role="viewer"),
    )
    webhook = document["paths"]["/webhooks/desk"]["post"]
    assert webhook["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Delivery"}}},
    }
    schemas = document["components"]["schemas"]
    assert schemas["Parcel"]["properties"]["weight_kg"] == {"type": "number", "exclusiveMinimum": 0}
    labels = document["paths"]["/labels"]["get"]["responses"]["200"]
    assert labels["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Booked"
    }
    validate(document, cls=OpenAPIV31SpecValidator)


def test_a_partner_webhook_documents_its_refusals_as_problems() -> None:
    document = _document(Route("POST", "/webhooks/desk", "partner", request=Delivery))
    responses = document["paths"]["/webhooks/desk"]["post"]["responses"]
    assert set(responses) == {"2XX", "400", "401", "413", "415", "422", "503"}
    for status in ("400", "401", "413", "415", "422", "503"):
        assert responses[status]["content"] == {
            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    assert "Retry-After" in responses["503"]["headers"]
    assert "security" not in document["paths"]["/webhooks/desk"]["post"]
    assert "securitySchemes" not in document["components"]


def test_routes_that_need_a_role_need_a_bearer_token_and_document_401_403_503() -> None:
    document = _document(Route("GET", "/labels", "operator", response=Booked, role="operator"))
    operation = document["paths"]["/labels"]["get"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert operation["x-waybill-role"] == "operator"
    assert "the operator role" in operation["description"]
    assert {"401", "403", "503"} <= set(operation["responses"])
    validate(document, cls=OpenAPIV31SpecValidator)
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A token naming the caller and its role (viewer, operator, admin).",
    }
    for probe in PROBES:
        assert "security" not in document["paths"][probe]["get"]


def test_the_query_types_are_not_left_among_the_schemas() -> None:
    document = _document(Route("GET", "/parcels", "operator", query=ParcelsQuery, role="viewer"))
    assert "ParcelsQuery" not in document["components"]["schemas"]


async def test_the_http_app_serves_the_document_it_is_given_and_the_probes_without_one() -> None:
    given = _document(Route("GET", "/labels", "operator", response=Booked, role="viewer"))
    registry = MetricsRegistry("parcel-desk")
    with_routes = create_http_app(
        service="parcel-desk", registry=registry, readiness=[], openapi=given
    )
    probes_only = create_http_app(service="parcel-desk", registry=registry, readiness=[])
    async with test_utils.TestClient(test_utils.TestServer(with_routes)) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == given
    async with test_utils.TestClient(test_utils.TestServer(probes_only)) as client:
        response = await client.get("/openapi.json")
        document = await response.json()
    assert set(document["paths"]) == PROBES
    assert document["info"]["title"] == "parcel-desk"


async def test_a_running_service_serves_the_document_of_its_declaration(
    nc: NatsClient, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    async with (
        running_service(
            example_service.service,
            nats_url=nats_url,
            subject_prefix=nats_prefix,
            http_port=port,
            **trusting(api_keys(tmp_path)),
        ),
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
        http.get("/openapi.json") as response,
    ):
        assert response.status == 200
        served = await response.json()
    assert served == example_service.service.openapi()
    answer = served["paths"]["/warehouse"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WarehouseAnswer"
    }
    assert served["info"] == {
        "title": "wms-bridge",
        "version": example_service.service.version,
        "description": "example bridge",
    }
