"""HTTP errors come back as RFC 9457 problem details; JSON bodies are checked by type."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from http import HTTPStatus
from typing import Any

import msgspec
import pytest
from aiohttp import test_utils, web

from waybill_runtime.http import (
    PROBLEM_CONTENT_TYPE,
    ProblemError,
    create_http_app,
    problem_response,
    read_json,
    read_json_body,
)
from waybill_runtime.metrics import MetricsRegistry

Client = test_utils.TestClient[web.Request, web.Application]
LIMIT = 256


class Parcel(msgspec.Struct):
    weight_kg: float


class BookShipment(msgspec.Struct):
    order_ref: str
    parcels: list[Parcel]


async def book(request: web.Request) -> web.Response:
    command = await read_json(request, BookShipment)
    return web.json_response({"order_ref": command.order_ref, "parcels": len(command.parcels)})


async def refuse(request: web.Request) -> web.Response:
    raise ProblemError(
        409,
        "Shipment Already Booked",
        "SO042 was booked at 10:02",
        type_="https://waybill.example/problems/already-booked",
        headers={"Retry-After": "60"},
        shipment_id="SH-1",
    )


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("secret token abc123 for jane.doe@example.com")


async def teapot(request: web.Request) -> web.Response:
    raise web.HTTPTooManyRequests(headers={"Retry-After": "3"})


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/carriers")


async def hook(request: web.Request) -> web.Response:
    await read_json_body(request)
    if request.match_info["token"] == "crash":
        raise RuntimeError("the hook broke")
    return web.json_response({"status": "accepted"})


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    app = create_http_app(
        service="carrier-router",
        registry=MetricsRegistry("carrier-router"),
        readiness=(),
        max_body_bytes=LIMIT,
        routes=[
            web.post("/shipments", book),
            web.post("/refuse", refuse),
            web.get("/crash", crash),
            web.get("/busy", teapot),
            web.get("/old", moved),
            web.post("/hooks/{token}", hook),
            web.get("/orders/{ref}/lines/{api_key}", hook),
        ],
    )
    async with test_utils.TestClient(test_utils.TestServer(app)) as test_client:
        yield test_client


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = await response.json(content_type=PROBLEM_CONTENT_TYPE)
    assert body["status"] == status
    assert body["type"]
    assert body["title"]
    return body


async def test_unknown_path_is_a_404_problem(client: Client) -> None:
    body = await problem(await client.get("/nowhere"), 404)
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "there is nothing at /nowhere",
    }


async def test_wrong_method_is_a_405_problem_keeping_allow(client: Client) -> None:
    response = await client.delete("/healthz")
    body = await problem(response, 405)
    assert "GET" in response.headers["Allow"]
    assert body["detail"].startswith("DELETE is not allowed on /healthz")


async def test_a_declared_body_over_the_limit_is_a_413_problem(client: Client) -> None:
    body = await problem(await client.post("/shipments", data=b"x" * (LIMIT + 1)), 413)
    assert body["detail"] == f"the request body has {LIMIT + 1} bytes; the limit is {LIMIT} bytes"


async def test_a_streamed_body_over_the_limit_is_a_413_problem(client: Client) -> None:
    async def chunks() -> AsyncIterable[bytes]:
        for _ in range(4):
            yield b'{"order_ref": "' + b"x" * 100

    response = await client.post(
        "/shipments", data=chunks(), headers={"Content-Type": "application/json"}
    )
    body = await problem(response, 413)
    assert str(LIMIT) in body["detail"]


async def test_a_field_of_the_wrong_type_is_a_422_problem_naming_it(client: Client) -> None:
    response = await client.post(
        "/shipments", json={"order_ref": "SO042", "parcels": [{"weight_kg": "heavy"}]}
    )
    body = await problem(response, 422)
    assert body["errors"] == [
        {"detail": "Expected `float`, got `str`", "pointer": "#/parcels/0/weight_kg"}
    ]
    assert "#/parcels/0/weight_kg" in body["detail"]


async def test_a_missing_field_is_a_422_problem_naming_it(client: Client) -> None:
    body = await problem(await client.post("/shipments", json={"parcels": []}), 422)
    assert body["errors"][0]["pointer"] == "#/order_ref"


async def test_invalid_json_is_a_400_problem(client: Client) -> None:
    response = await client.post(
        "/shipments", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    body = await problem(response, 400)
    assert body["detail"].startswith("the body is not valid JSON")


async def test_an_empty_body_is_a_400_problem(client: Client) -> None:
    response = await client.post("/shipments", headers={"Content-Type": "application/json"})
    assert (await problem(response, 400))["detail"].startswith("the request has no body")


async def test_a_body_that_is_not_json_is_a_415_problem(client: Client) -> None:
    response = await client.post("/shipments", data="order=SO042")
    body = await problem(response, 415)
    assert "application/json" in body["detail"]


async def test_a_json_suffix_media_type_is_accepted(client: Client) -> None:
    response = await client.post(
        "/shipments",
        data=b'{"order_ref": "SO042", "parcels": [{"weight_kg": 1.5}]}',
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert response.status == 200
    assert await response.json() == {"order_ref": "SO042", "parcels": 1}


async def test_a_problem_raised_by_a_handler_keeps_its_type_headers_and_extensions(
    client: Client,
) -> None:
    response = await client.post("/refuse")
    body = await problem(response, 409)
    assert body == {
        "type": "https://waybill.example/problems/already-booked",
        "title": "Shipment Already Booked",
        "status": 409,
        "detail": "SO042 was booked at 10:02",
        "shipment_id": "SH-1",
    }
    assert response.headers["Retry-After"] == "60"


async def test_an_aiohttp_error_keeps_its_retry_after(client: Client) -> None:
    response = await client.get("/busy")
    await problem(response, 429)
    assert response.headers["Retry-After"] == "3"


async def test_redirects_pass_through_untouched(client: Client) -> None:
    response = await client.get("/old", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/carriers"


async def test_an_unexpected_error_is_a_500_problem_without_internals(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="waybill_runtime.http.problem"):
        response = await client.get("/crash")
    body = await problem(response, 500)
    text = await response.text()
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert "abc123" not in text
    assert body["detail"] == "the service failed to handle this request; the error is in its logs"
    [record] = caplog.records
    assert record.exc_info is not None and "abc123" in str(record.exc_info[1])


def test_problem_response_builds_an_rfc_9457_body() -> None:
    response = problem_response(404, "Not Found", "no shipment SH-9", shipment_id="SH-9")
    assert response.status == 404
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert isinstance(response.body, bytes)
    assert msgspec.json.decode(response.body) == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no shipment SH-9",
        "shipment_id": "SH-9",
    }


def test_problem_error_defaults_its_title_from_the_status() -> None:
    error = ProblemError(422)
    assert error.title == HTTPStatus(422).phrase
    assert str(error) == f"422 {error.title}"


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("answered")]


async def test_a_body_nested_deeper_than_64_levels_is_a_400_problem_in_one_line(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    deep = b'{"order_ref": "SO042", "parcels": ' + b"[" * 65 + b"]" * 65 + b"}"
    with caplog.at_level(logging.INFO, logger="waybill_runtime.http.problem"):
        response = await client.post(
            "/shipments", data=deep, headers={"Content-Type": "application/json"}
        )
    body = await problem(response, 400)
    assert body["detail"] == "the body nests arrays or objects more than 64 levels deep"
    [line] = refusals(caplog)
    assert line.levelno == logging.INFO
    assert line.getMessage() == (
        "answered 400 to POST /shipments from 127.0.0.1: "
        "the body nests arrays or objects more than 64 levels deep"
    )


async def test_a_body_64_levels_deep_is_read_as_usual(client: Client) -> None:
    response = await client.post(
        "/hooks/t0k3n-abcdefghijklmnop",
        data=b"[" * 64 + b"]" * 64,
        headers={"Content-Type": "application/json"},
    )
    assert (response.status, await response.json()) == (200, {"status": "accepted"})


async def test_each_refusal_is_logged_once_naming_what_was_wrong(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="waybill_runtime.http.problem"):
        await client.post("/shipments", data="order=SO042")
        await client.post("/shipments", json={"parcels": []})
        await client.get("/nowhere")
        await client.post("/refuse")
    lines = [r.getMessage() for r in refusals(caplog)]
    assert len(lines) == 4
    assert lines[0].startswith("answered 415 to POST /shipments") and "text/plain" in lines[0]
    assert lines[1].startswith("answered 422") and "#/order_ref" in lines[1]
    assert lines[2] == "answered 404 to GET /nowhere from 127.0.0.1: there is nothing at /nowhere"
    assert lines[3].endswith("SO042 was booked at 10:02")


async def test_secrets_in_the_path_never_reach_the_log(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "t0k3n-abcdefghijklmnop"
    with caplog.at_level(logging.INFO, logger="waybill_runtime.http.problem"):
        refused = await client.post(f"/hooks/{secret}", data="x")  # 415
        beside = await client.post(f"/hooks/{secret}/more", data="x")  # no such route: 404
        crashed = await client.post(
            "/hooks/crash", data=b"{}", headers={"Content-Type": "application/json"}
        )
        key = await client.get(f"/orders/SO042/lines/{secret}", data="x")
    assert [refused.status, beside.status, crashed.status, key.status] == [415, 404, 500, 415]
    # The caller hears back the path it sent; the log gets it redacted.
    assert secret in (await beside.json(content_type=PROBLEM_CONTENT_TYPE))["detail"]
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 4
    assert all(secret not in line for line in logged)
    assert logged[0].startswith("answered 415 to POST /hooks/*** from")
    assert logged[1] == (
        "answered 404 to POST /hooks/***/more from 127.0.0.1: there is nothing at /hooks/***/more"
    )
    assert logged[2] == "unhandled error answering POST /hooks/***"
    assert logged[3].startswith("answered 415 to GET /orders/SO042/lines/*** from")


async def test_refused_credentials_are_logged_as_warnings(caplog: pytest.LogCaptureFixture) -> None:
    async def locked(request: web.Request) -> web.Response:
        raise ProblemError(401, detail="the signature does not match")

    app = create_http_app(
        service="wms-bridge",
        registry=MetricsRegistry("wms-bridge"),
        readiness=(),
        routes=[web.post("/webhooks/wms", locked)],
    )
    async with test_utils.TestClient(test_utils.TestServer(app)) as test_client:
        with caplog.at_level(logging.INFO, logger="waybill_runtime.http.problem"):
            await problem(await test_client.post("/webhooks/wms"), 401)
    [line] = refusals(caplog)
    assert line.levelno == logging.WARNING
    assert "the signature does not match" in line.getMessage()
