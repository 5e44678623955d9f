"""API access settings that do not fit together stop a service before it starts, in one line;
routes say which role they need, and only routes people call must name one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.runtime.api_desk import ROUTES, build_desk, running_desk
from tests.runtime.api_keyring import AUDIENCE, ISSUER, api_settings, ed_key, write_jwks
from waybill_runtime.declaration import Route
from waybill_runtime.http import api_access
from waybill_runtime.service import Runtime, Service
from waybill_runtime.settings import RuntimeSettings, SettingsError, load_settings
from waybill_runtime.testing.services import running_service


def settings_of(**values: Any) -> RuntimeSettings:
    return load_settings(RuntimeSettings, environ={}, service="desk", **values)


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    return write_jwks(tmp_path / "jwks.json", ed_key())


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(b"s" * 40)
    return path


def test_protected_routes_without_a_key_source_are_refused() -> None:
    with pytest.raises(SettingsError) as refused:
        api_access(settings_of(), ROUTES)
    assert str(refused.value) == (
        "desk serves protected routes (GET /holds, POST /holds, DELETE /holds) but no API key "
        "source is set: set WAYBILL_API_JWKS_FILE or WAYBILL_API_JWKS_URL with "
        "WAYBILL_API_ISSUER and WAYBILL_API_AUDIENCE (`waybill up` sets them)"
    )


async def test_a_service_with_protected_routes_and_no_keys_does_not_start(
    nats_url: str, nats_prefix: str
) -> None:
    with pytest.raises(SettingsError, match="no API key source is set"):
        async with running_service(build_desk(), nats_url=nats_url, subject_prefix=nats_prefix):
            pass


async def test_a_service_with_no_protected_route_needs_no_keys(
    nats_url: str, nats_prefix: str
) -> None:
    webhooks_only = Service("hooks", routes=[Route("POST", "/webhooks/x", "partner")])

    @webhooks_only.routes
    def routes(runtime: Runtime[RuntimeSettings]) -> list[web.RouteDef]:
        async def webhook(request: web.Request) -> web.Response:
            return web.Response(status=204)

        return [web.post("/webhooks/x", webhook)]

    async with running_service(webhooks_only, nats_url=nats_url, subject_prefix=nats_prefix):
        assert api_access(settings_of(), webhooks_only.declared_routes).protects_anything is False


def _bad(tmp: Path, name: str, content: bytes) -> str:
    path = tmp / name
    path.write_bytes(content)
    return str(path)


IA = {"api_issuer": ISSUER, "api_audience": AUDIENCE}
LOCAL = {"http_host": "127.0.0.1"}

# (settings for the case, given the folder, a good JWKS file and a good secret file; the line)
CASES: dict[str, tuple[Any, str]] = {
    "file and url": (
        lambda t, j, s: {**IA, "api_jwks_file": j, "api_jwks_url": "https://id.test/jwks"},
        "WAYBILL_API_JWKS_FILE and WAYBILL_API_JWKS_URL are both set: API tokens are "
        "checked with one key source; keep one",
    ),
    "file and secret": (
        lambda t, j, s: {**IA, **LOCAL, "api_jwks_file": j, "api_hs256_secret_file": s},
        "WAYBILL_API_JWKS_FILE and WAYBILL_API_HS256_SECRET_FILE are both set",
    ),
    "no issuer or audience": (
        lambda t, j, s: {"api_jwks_file": j},
        "WAYBILL_API_ISSUER and WAYBILL_API_AUDIENCE are required with an API key source: "
        "set the iss and aud every token must carry",
    ),
    "no audience": (
        lambda t, j, s: {"api_jwks_file": j, "api_issuer": ISSUER},
        "WAYBILL_API_AUDIENCE is required with an API key source",
    ),
    "file not json": (
        lambda t, j, s: {**IA, "api_jwks_file": _bad(t, "j.json", b"not json")},
        "WAYBILL_API_JWKS_FILE is not valid: ",
    ),
    "file without keys": (
        lambda t, j, s: {**IA, "api_jwks_file": _bad(t, "j.json", b'{"keys": []}')},
        "holds no usable signing key",
    ),
    "plain http url": (
        lambda t, j, s: {**IA, "api_jwks_url": "http://id.example.test/jwks"},
        "WAYBILL_API_JWKS_URL='http://id.example.test/jwks' is not valid: keys are read "
        "over https (http only from this machine, 127.0.0.1 or localhost)",
    ),
    "short secret": (
        lambda t, j, s: {**IA, **LOCAL, "api_hs256_secret_file": _bad(t, "short", b"tiny\n")},
        "holds 4 bytes: an HS256 secret needs 32 at least",
    ),
    "secret on a public address": (
        lambda t, j, s: {**IA, "api_hs256_secret_file": s, "http_host": "0.0.0.0"},
        "WAYBILL_API_HS256_SECRET_FILE is for local use only, and WAYBILL_HTTP_HOST='0.0.0.0' "
        "listens beyond this machine",
    ),
    "revocation list not text": (
        lambda t, j, s: {
            **IA,
            "api_jwks_file": j,
            "api_revoked_jti_file": _bad(t, "revoked", b"\xff\xfe not text"),
        },
        "WAYBILL_API_REVOKED_JTI_FILE is not valid: ",
    ),
}


@pytest.mark.parametrize(("values", "message"), list(CASES.values()), ids=list(CASES))
def test_settings_that_do_not_fit_together_are_named_in_one_line(
    tmp_path: Path, jwks_file: Path, secret_file: Path, values: Any, message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        api_access(settings_of(**values(tmp_path, str(jwks_file), str(secret_file))), ROUTES)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


async def test_a_missing_key_file_is_named_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"WAYBILL_API_JWKS_FILE=.* no such file"):
        load_settings(
            RuntimeSettings,
            {"WAYBILL_API_JWKS_FILE": str(tmp_path / "missing.json")},
            service="desk",
        )


async def test_an_http_jwks_url_on_this_machine_is_accepted(
    nats_url: str, nats_prefix: str
) -> None:
    settings: dict[str, Any] = {
        "api_jwks_url": "http://localhost:1/jwks",
        "api_issuer": ISSUER,
        "api_audience": AUDIENCE,
    }
    async with (
        running_desk(nats_url, nats_prefix, **settings) as http,
        http.get("/healthz") as response,
    ):
        assert response.status == 200


def test_a_jwks_file_with_keys_starts_with_them(jwks_file: Path) -> None:
    access = api_access(settings_of(**api_settings(jwks_file)), ROUTES)
    assert access.protects_anything


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (
            lambda: Route("GET", "/orders", "operator"),
            'GET /orders is called by people: declare the role it needs (role="viewer" to '
            'read, "operator" to act, "admin")',
        ),
        (lambda: Route("GET", "/ping", "probe", role="viewer"), "probe route: those stay open"),
        (lambda: Route("GET", "/orders", "operator", role="root"), "no role 'root'"),  # type: ignore[arg-type]
    ],
    ids=["people without a role", "probe with a role", "unknown role"],
)
def test_a_route_people_call_names_its_role(route: Any, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        route()
    assert message in str(refused.value)
