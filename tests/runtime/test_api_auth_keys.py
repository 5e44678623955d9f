"""Where the keys come from: a JWKS file read again when it changes, a JWKS URL kept and read
again for an unknown kid (rate-limited), a local HS256 secret; keys rotated end to end."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import OKPAlgorithm

from tests.runtime.api_desk import running_desk
from tests.runtime.api_keyring import (
    AUDIENCE,
    ISSUER,
    SigningKey,
    api_settings,
    claims,
    ec_key,
    ed_key,
    hs256_signed_with,
    jwks,
    rsa_key,
    unsigned,
    write_jwks,
)
from waybill_runtime.http import PROBLEM_CONTENT_TYPE, serve_http
from waybill_runtime.local.ports import free_port
from waybill_runtime.security.api_keys import ApiKeyError, parse_jwks
from waybill_runtime.testing.tokens import api_keys
from waybill_runtime.testing.waiting import eventually


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def status_of(http: aiohttp.ClientSession, token: str) -> int:
    async with http.get("/holds", headers=bearer(token)) as response:
        return response.status


@dataclass
class JwksServer:
    """An identity provider's JWKS endpoint; ``document`` None answers 500."""

    document: dict[str, Any] | None
    url: str = ""
    reads: int = 0


@contextlib.asynccontextmanager
async def jwks_server(*keys: SigningKey) -> AsyncIterator[JwksServer]:
    server = JwksServer(jwks(*keys))

    async def keys_document(request: web.Request) -> web.Response:
        server.reads += 1
        if server.document is None:
            return web.Response(status=500, text="identity provider down")
        return web.json_response(server.document)

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", keys_document)
    async with serve_http(app, "127.0.0.1", 0) as bound:
        server.url = f"{bound.url}/.well-known/jwks.json"
        yield server


def waybill_token(state_dir: Path, *arguments: str) -> str:
    """`waybill token ...` against ``state_dir``, as a person would run it; its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "waybill_runtime", "token", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WAYBILL_STATE_DIR": str(state_dir)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def test_keys_rotate_without_downtime_with_the_local_key_and_the_cli(
    nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    keys = api_keys(tmp_path)
    async with running_desk(nats_url, nats_prefix, tmp_path) as http:
        old = waybill_token(tmp_path, "issue", "--role", "viewer", "--subject", "alice")
        assert await status_of(http, old) == 200

        assert waybill_token(tmp_path, "rotate").startswith("new signing key")
        assert len(keys.trusted()) == 2  # old and new side by side
        new = waybill_token(tmp_path, "issue", "--role", "viewer", "--subject", "alice")
        old_kid, new_kid = (jwt.get_unverified_header(t)["kid"] for t in (old, new))
        assert old_kid != new_kid
        assert (await status_of(http, old), await status_of(http, new)) == (200, 200)

        assert waybill_token(tmp_path, "retire") == f"retired: {old_kid}"
        assert [k["kid"] for k in keys.trusted()] == [new_kid]
        assert (await status_of(http, old), await status_of(http, new)) == (401, 200)


async def test_keys_rotate_without_downtime_through_a_jwks_url(
    nats_url: str, nats_prefix: str
) -> None:
    old, new = ec_key("2025-01"), ed_key("2025-07")
    async with jwks_server(old) as idp:
        settings: dict[str, Any] = {
            "api_jwks_url": idp.url,
            "api_issuer": ISSUER,
            "api_audience": AUDIENCE,
            "api_jwks_refresh_s": 1,
            "api_jwks_min_refresh_s": 0,
        }
        async with running_desk(nats_url, nats_prefix, **settings) as http:
            old_token, new_token = old.sign(claims()), new.sign(claims())
            assert await status_of(http, old_token) == 200
            idp.document = jwks(old, new)
            # The new kid is unknown: the keys are read again at once.
            assert await status_of(http, new_token) == 200
            assert await status_of(http, old_token) == 200
            idp.document = jwks(new)
            # The old key goes when the kept keys are next read (every second here).
            await eventually(
                lambda: status_of(http, old_token),
                until=lambda status: status == 401,
                what="the retired key's token to be refused",
            )
            assert await status_of(http, new_token) == 200


async def test_an_unknown_kid_reads_the_url_again_no_more_often_than_the_minimum(
    nats_url: str, nats_prefix: str
) -> None:
    known, unknown = ec_key("known"), ec_key("not-yet-published")
    async with jwks_server(known) as idp:
        settings: dict[str, Any] = {
            "api_jwks_url": idp.url,
            "api_issuer": ISSUER,
            "api_audience": AUDIENCE,
            "api_jwks_min_refresh_s": 3600,
        }
        async with running_desk(nats_url, nats_prefix, **settings) as http:
            assert await status_of(http, known.sign(claims())) == 200
            assert idp.reads == 1
            idp.document = jwks(known, unknown)
            # Anyone can make up kids: they do not make the service hammer the provider.
            for _ in range(5):
                assert await status_of(http, unknown.sign(claims())) == 401
            assert idp.reads == 1


async def test_keys_that_cannot_be_read_at_all_give_503_not_401(
    nats_url: str, nats_prefix: str
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/jwks"
    async with jwks_server() as down:
        down.document = None
        for url in (nowhere, down.url):
            settings: dict[str, Any] = {
                "api_jwks_url": url,
                "api_issuer": ISSUER,
                "api_audience": AUDIENCE,
            }
            token = ec_key().sign(claims())
            async with (
                running_desk(nats_url, nats_prefix, **settings) as http,
                http.get("/holds", headers=bearer(token)) as response,
            ):
                assert response.status == 503
                assert response.content_type == PROBLEM_CONTENT_TYPE
                assert response.headers["Retry-After"] == "5"
                body = await response.json(content_type=None)
        assert down.reads == 1
    assert body["detail"] == "the service cannot check tokens right now; try again shortly"


async def test_keys_read_before_stay_in_use_while_the_url_fails(
    nats_url: str, nats_prefix: str
) -> None:
    key = ed_key("steady")
    async with jwks_server(key) as idp:
        settings: dict[str, Any] = {
            "api_jwks_url": idp.url,
            "api_issuer": ISSUER,
            "api_audience": AUDIENCE,
            "api_jwks_refresh_s": 1,
            "api_jwks_min_refresh_s": 0,
        }
        async with running_desk(nats_url, nats_prefix, **settings) as http:
            token = key.sign(claims())
            assert await status_of(http, token) == 200
            idp.document = None
            statuses: list[int] = []

            async def reads_while_calling() -> int:
                statuses.append(await status_of(http, token))
                return idp.reads

            await eventually(
                reads_while_calling, until=lambda reads: reads >= 2, what="a failed re-read"
            )
    assert set(statuses) == {200}


async def test_a_jwks_file_is_read_again_when_it_changes_and_kept_when_broken(
    nats_url: str, nats_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = rsa_key("first"), ec_key("second")
    jwks_file = write_jwks(tmp_path / "jwks.json", first)
    async with running_desk(nats_url, nats_prefix, **api_settings(jwks_file)) as http:
        first_token, second_token = first.sign(claims()), second.sign(claims())
        assert await status_of(http, first_token) == 200
        half_written = tmp_path / "half"
        half_written.write_text('{"keys": [{"kty": "EC", ')
        half_written.replace(jwks_file)
        assert await status_of(http, first_token) == 200
        assert "the content read before stays in use" in caplog.text
        write_jwks(jwks_file, second)
        assert (await status_of(http, first_token), await status_of(http, second_token)) == (
            401,
            200,
        )


async def test_an_hs256_secret_checks_tokens_for_local_use_only_with_hs256(
    nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    secret = os.urandom(24).hex().encode()  # 48 bytes
    secret_file = tmp_path / "api-secret"
    secret_file.write_bytes(secret + b"\n")
    secret_file.chmod(0o600)
    settings: dict[str, Any] = {
        "api_hs256_secret_file": str(secret_file),
        "api_issuer": ISSUER,
        "api_audience": AUDIENCE,
    }
    async with running_desk(nats_url, nats_prefix, **settings) as http:
        good = jwt.encode(claims(), secret, algorithm="HS256")
        assert await status_of(http, good) == 200
        other_secret = hs256_signed_with(b"x" * 48, claims())
        asymmetric = ed_key().sign(claims())
        none = unsigned(claims())
        for refused in (other_secret, asymmetric, none):
            assert await status_of(http, refused) == 401


def test_unusable_keys_of_a_jwks_are_left_out_and_named_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, twin = ed_key("good"), ed_key("good")
    leaky = ed_key("leaky")
    private = {**json.loads(OKPAlgorithm.to_jwk(leaky.private)), "kid": "leaky"}
    entries: list[Any] = [
        good.jwk(),
        twin.jwk(),
        private,
        rsa_key("short", bits=1024).jwk(),
        {**ec_key("encryption").jwk(), "use": "enc"},
        {k: v for k, v in ec_key().jwk().items() if k != "kid"},
        {**ec_key("mislabelled").jwk(), "alg": "RS256"},
        SigningKey("p384", "ES256", ec.generate_private_key(ec.SECP384R1())).jwk(),
        {"kty": "OKP", "crv": "Ed25519", "x": "not-a-key!", "kid": "broken"},
        "not an object",
    ]
    keys = parse_jwks(json.dumps({"keys": entries}).encode(), "idp.example.test")
    assert list(keys) == ["good"]
    assert keys["good"].algorithm == "EdDSA"
    for expected in (
        "kid 'good' appears twice",
        "key 'leaky' holds a private key",
        "key 'short' has 1024 bits",
        "key 'encryption' is not a signing key",
        "key 5 has no kid",
        "key 'mislabelled' names alg 'RS256'",
        "key 'p384' is of a type Waybill does not use",
        "key 'broken' is not a valid EdDSA key",
        "key 9 is not a JSON object",
    ):
        assert expected in caplog.text
    assert all(r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<html>", "idp is not JSON: expected a JWKS"),
        (b'{"keys": {}}', 'idp is not a JWKS: expected an object with a "keys" list'),
        (b"[]", 'idp is not a JWKS: expected an object with a "keys" list'),
        (b'{"keys": []}', "idp holds no usable signing key"),
    ],
)
def test_a_document_that_is_no_usable_jwks_is_refused(document: bytes, message: str) -> None:
    with pytest.raises(ApiKeyError, match=message):
        parse_jwks(document, "idp")
