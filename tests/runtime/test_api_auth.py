"""Bearer JWTs on a running service's API: every bad token gets the same 401, a role too
weak gets 403, the caller reaches the handler, and every decision is in the log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.runtime.api_desk import running_desk
from tests.runtime.api_keyring import (
    SigningKey,
    api_settings,
    at,
    claims,
    drop,
    ec_key,
    ed_key,
    hs256_signed_with,
    rsa_key,
    unsigned,
    write_jwks,
)
from waybill_runtime.http import PROBLEM_CONTENT_TYPE

REVOKED_JTI = "revoked-0001"
UNAUTHORIZED = {
    "type": "about:blank",
    "title": "Unauthorized",
    "status": 401,
    "detail": "send a valid bearer token (Authorization: Bearer <token>) to use this API",
}
FORBIDDEN = {
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
    "detail": "your token does not grant this action",
}


@dataclass(frozen=True)
class Keys:
    rsa: SigningKey
    ec: SigningKey
    ed: SigningKey

    def by_algorithm(self, algorithm: str) -> SigningKey:
        return {"RS256": self.rsa, "ES256": self.ec, "EdDSA": self.ed}[algorithm]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(rsa=rsa_key(), ec=ec_key(), ed=ed_key())


@pytest.fixture
def revoked_file(tmp_path: Path) -> Path:
    path = tmp_path / "revoked-jti"
    path.write_text(f"# revoked by the tests\n{REVOKED_JTI}\n")
    return path


@pytest.fixture
async def desk(
    nats_url: str, nats_prefix: str, tmp_path: Path, keys: Keys, revoked_file: Path
) -> AsyncIterator[aiohttp.ClientSession]:
    jwks_file = write_jwks(tmp_path / "jwks.json", keys.rsa, keys.ec, keys.ed)
    settings = api_settings(jwks_file, api_revoked_jti_file=str(revoked_file))
    async with running_desk(nats_url, nats_prefix, **settings) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refusal(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """The problem body of a refused call (without its trace id), checked for shape."""
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = await response.json(content_type=None)
    trace_id = body.pop("trace_id")
    assert isinstance(trace_id, str) and len(trace_id) == 32
    return body


def revoke(revoked_file: Path, token_id: str) -> None:
    """Add ``token_id`` to the list the way an operator's tooling would: a new file in place."""
    replacement = revoked_file.with_name("revoked-jti.new")
    replacement.write_text(f"{revoked_file.read_text()}{token_id}  # lost laptop\n")
    replacement.replace(revoked_file)


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "waybill.api.access"]


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
async def test_a_viewer_token_of_each_accepted_algorithm_reads(
    desk: aiohttp.ClientSession, keys: Keys, algorithm: str
) -> None:
    token = keys.by_algorithm(algorithm).sign(claims("viewer", subject="alice"))
    async with desk.get("/holds", headers=bearer(token)) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["caller"] == "alice"


# (what is wrong, the Authorization header it makes, the reason the log gives)
BadToken = Callable[[Keys], dict[str, str]]
BAD_TOKENS: list[tuple[str, BadToken, str]] = [
    ("no token", lambda k: {}, "no bearer token"),
    ("not bearer", lambda k: {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "no bearer token"),
    ("not a jwt", lambda k: bearer("not.a.jwt"), "malformed"),
    (
        "forged",  # the trusted kid, signed with another key
        lambda k: bearer(SigningKey("ed-1", "EdDSA", ed_key().private).sign(claims())),
        "bad signature",
    ),
    (
        "expired",
        lambda k: bearer(
            k.ed.sign(claims(iat=at(-timedelta(hours=2)), exp=at(-timedelta(hours=1))))
        ),
        "expired",
    ),
    (
        "not yet valid",
        lambda k: bearer(k.ed.sign(claims(nbf=at(timedelta(hours=1))))),
        "not yet valid",
    ),
    ("wrong issuer", lambda k: bearer(k.ed.sign(claims(iss="https://evil.test/"))), "wrong issuer"),
    ("wrong audience", lambda k: bearer(k.ed.sign(claims(aud="other-api"))), "wrong audience"),
    ("unknown kid", lambda k: bearer(ed_key("ed-404").sign(claims())), "unknown kid"),
    ("no kid", lambda k: bearer(k.ed.sign(claims(), kid=None)), "unknown kid"),
    ("alg none", lambda k: bearer(unsigned(claims("admin"), kid="ed-1")), "'none' not accepted"),
    (
        "HS256 signed with the RSA public key",
        lambda k: bearer(hs256_signed_with(k.rsa.public_pem(), claims("admin"), kid="rsa-1")),
        "'HS256' not accepted",
    ),
    (
        "RS256 named on an EC key",
        lambda k: bearer(k.rsa.sign(claims(), kid="ec-1")),
        "is not the one of key 'ec-1'",
    ),
    ("no subject", lambda k: bearer(k.ed.sign(claims(sub=drop))), "no sub claim"),
    ("empty subject", lambda k: bearer(k.ed.sign(claims(sub=""))), "malformed sub"),
    ("no expiry", lambda k: bearer(k.ed.sign(claims(exp=drop))), "no exp claim"),
    ("no token id", lambda k: bearer(k.ed.sign(claims(jti=drop))), "no jti claim"),
    ("revoked", lambda k: bearer(k.ed.sign(claims(jti=REVOKED_JTI))), "revoked"),
]


@pytest.mark.parametrize(
    ("make_header", "reason"),
    [(make, reason) for _, make, reason in BAD_TOKENS],
    ids=[name for name, _, _ in BAD_TOKENS],
)
async def test_a_refused_token_gets_the_same_401_whatever_check_failed(
    desk: aiohttp.ClientSession,
    keys: Keys,
    caplog: pytest.LogCaptureFixture,
    make_header: BadToken,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="waybill.api.access")
    async with desk.get("/holds", headers=make_header(keys)) as response:
        assert await refusal(response, 401) == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="waybill"'
    # The caller learns nothing; the log says which check failed.
    [record] = access_records(caplog)
    assert record.outcome == "refused"  # type: ignore[attr-defined]
    assert reason in record.reason  # type: ignore[attr-defined]
    assert record.subject is None  # type: ignore[attr-defined]


async def test_a_viewer_calling_an_operator_action_gets_403(
    desk: aiohttp.ClientSession, keys: Keys
) -> None:
    viewer = bearer(keys.ed.sign(claims("viewer")))
    async with desk.post("/holds", headers=viewer) as response:
        assert await refusal(response, 403) == FORBIDDEN
    roleless = bearer(keys.ed.sign(claims(None)))
    async with desk.get("/holds", headers=roleless) as response:
        assert await refusal(response, 403) == FORBIDDEN
    unknown_role = bearer(keys.ed.sign(claims("superuser")))
    async with desk.get("/holds", headers=unknown_role) as response:
        assert await refusal(response, 403) == FORBIDDEN


@pytest.mark.parametrize(
    ("role", "get", "post", "delete"),
    [
        ("viewer", 200, 403, 403),
        ("operator", 200, 200, 403),
        ("admin", 200, 200, 200),
    ],
)
async def test_each_role_grants_what_the_weaker_ones_do(
    desk: aiohttp.ClientSession, keys: Keys, role: str, get: int, post: int, delete: int
) -> None:
    headers = bearer(keys.ec.sign(claims(role)))
    async with desk.get("/holds", headers=headers) as response:
        assert response.status == get
    async with desk.post("/holds", headers=headers) as response:
        assert response.status == post
    async with desk.delete("/holds", headers=headers) as response:
        assert response.status == delete


async def test_the_operator_s_identity_reaches_the_action_and_what_it_records(
    desk: aiohttp.ClientSession, keys: Keys
) -> None:
    operator = bearer(keys.rsa.sign(claims("operator", subject="alice")))
    async with desk.post("/holds", headers=operator) as response:
        assert await response.json() == {"held_by": "alice", "role": "operator"}
    viewer = bearer(keys.rsa.sign(claims("viewer", subject="bob")))
    async with desk.get("/holds", headers=viewer) as response:
        listed = await response.json()
    assert listed == {"holds": [{"order_ref": "WH/OUT/1", "held_by": "alice"}], "caller": "bob"}


async def test_probes_metrics_and_partner_webhooks_need_no_token(
    desk: aiohttp.ClientSession,
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        async with desk.get(path) as response:
            assert response.status == 200, path
    # A partner's webhook checks its own signature: no caller, whatever it sends.
    for headers in ({}, bearer("not.a.jwt")):
        async with desk.post("/webhooks/desk", headers=headers) as response:
            assert response.status == 200
            assert await response.json() == {"caller": None}
    async with desk.get("/no-such-page") as response:
        assert response.status == 404


async def test_every_decision_is_logged_with_subject_role_action_outcome_and_trace_id(
    desk: aiohttp.ClientSession, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waybill.api.access")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    viewer_token = keys.ed.sign(claims("viewer", subject="carol"))
    async with desk.get("/holds", headers={**bearer(viewer_token), **traced}) as response:
        assert response.status == 200
    async with desk.post("/holds", headers={**bearer(viewer_token), **traced}) as response:
        assert (await response.json())["trace_id"] == trace_id
    async with desk.delete("/holds") as response:
        untraced = (await response.json())["trace_id"]
    allowed, forbidden, refused = access_records(caplog)
    fields = ("subject", "role", "action", "needs", "outcome", "trace_id")
    assert [tuple(getattr(r, f) for f in fields) for r in (allowed, forbidden, refused)] == [
        ("carol", "viewer", "GET /holds", "viewer", "allowed", trace_id),
        ("carol", "viewer", "POST /holds", "operator", "forbidden", trace_id),
        (None, None, "DELETE /holds", "admin", "refused", untraced),
    ]
    assert (allowed.levelno, forbidden.levelno, refused.levelno) == (
        logging.INFO,
        logging.WARNING,
        logging.WARNING,
    )
    # The token itself is never written down.
    assert all(viewer_token not in repr(r.__dict__) for r in caplog.records)


async def test_the_caller_is_checked_before_the_body_is_read(
    nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    async with (
        running_desk(nats_url, nats_prefix, tmp_path, http_max_body_bytes=16) as http,
        http.post("/holds", data=b"x" * 1024) as response,
    ):
        assert await refusal(response, 401) == UNAUTHORIZED


async def test_a_head_request_on_a_protected_read_needs_a_token_too(
    desk: aiohttp.ClientSession, keys: Keys
) -> None:
    async with desk.head("/holds") as response:
        assert response.status == 401
    async with desk.head("/holds", headers=bearer(keys.ed.sign(claims()))) as response:
        assert response.status == 200


async def test_roles_may_come_as_text_from_a_claim_of_the_identity_provider_s_choosing(
    nats_url: str, nats_prefix: str, tmp_path: Path, keys: Keys
) -> None:
    jwks_file = write_jwks(tmp_path / "jwks.json", keys.ed)
    settings = api_settings(jwks_file, api_roles_claim="waybill/groups")
    async with running_desk(nats_url, nats_prefix, **settings) as http:
        grouped = claims(None, **{"waybill/groups": "staff operator"})
        async with http.post("/holds", headers=bearer(keys.ed.sign(grouped))) as response:
            assert response.status == 200
        # The default claim means nothing once another is named.
        async with http.get("/holds", headers=bearer(keys.ed.sign(claims("admin")))) as response:
            assert response.status == 403


async def test_a_token_revoked_while_the_service_runs_is_refused_from_the_next_request(
    desk: aiohttp.ClientSession, keys: Keys, revoked_file: Path
) -> None:
    token_claims = claims("viewer")
    headers = bearer(keys.ed.sign(token_claims))
    async with desk.get("/holds", headers=headers) as response:
        assert response.status == 200
    revoke(revoked_file, token_claims["jti"])
    async with desk.get("/holds", headers=headers) as response:
        assert response.status == 401
    async with desk.get("/holds", headers=bearer(keys.ed.sign(claims("viewer")))) as response:
        assert response.status == 200


async def test_the_newest_expiry_of_each_callers_tokens_is_a_metric(
    desk: aiohttp.ClientSession, keys: Keys
) -> None:
    later, sooner = at(timedelta(hours=5)), at(timedelta(hours=1))
    for expiry in (later, sooner):  # an older token still in use moves nothing back
        token = keys.ed.sign(claims("viewer", subject="erp-sync", exp=expiry))
        async with desk.get("/holds", headers=bearer(token)) as response:
            assert response.status == 200, await response.text()
    async with desk.get("/metrics") as response:
        text = await response.text()
    [line] = [
        row
        for row in text.splitlines()
        if row.startswith("waybill_api_token_expiry_timestamp_seconds{")
    ]
    assert 'subject="erp-sync"' in line
    assert float(line.rsplit(" ", 1)[1]) == float(later)
