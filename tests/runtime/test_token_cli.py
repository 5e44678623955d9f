"""`waybill token`: local tokens a service accepts, keys kept private, and every mistake
answered in one line."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from waybill_runtime.security.api_keys import JwksFile
from waybill_runtime.security.api_tokens import (
    RevokedTokens,
    TokenRefused,
    TokenRules,
    TokenVerifier,
)
from waybill_runtime.security.local_api_keys import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalApiKeys
from waybill_runtime.testing.tokens import api_keys


def waybill(*arguments: str, state_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WAYBILL_STATE_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "waybill_runtime", "token", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=state_dir.parent if state_dir is not None else None,
        env=env if state_dir is None else {**env, "WAYBILL_STATE_DIR": str(state_dir)},
    )


def verifier(keys: LocalApiKeys) -> TokenVerifier:
    return TokenVerifier(
        JwksFile(keys.jwks_file),
        TokenRules(issuer=LOCAL_ISSUER, audience=LOCAL_AUDIENCE),
        revoked=RevokedTokens(keys.revoked_file),
    )


def test_an_issued_token_is_accepted_for_its_subject_role_and_lifetime(tmp_path: Path) -> None:
    keys = api_keys(tmp_path)
    before = datetime.now(UTC).replace(microsecond=0)
    result = waybill(
        "issue", "--role", "operator", "--subject", "alice", "--ttl", "1h30m", state_dir=tmp_path
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert "\n" not in token  # the token alone: TOKEN=$(waybill token issue ...)
    principal = asyncio.run(verifier(keys).verify(token))
    assert (principal.subject, principal.role) == ("alice", "operator")
    lifetime = principal.expires_at - before
    assert timedelta(minutes=89) <= lifetime <= timedelta(minutes=91)
    assert "operator token for alice, valid until " in result.stderr
    assert f"(jti {principal.token_id})" in result.stderr


def test_issue_can_print_the_token_with_its_claims(tmp_path: Path) -> None:
    keys = api_keys(tmp_path)
    result = waybill("issue", "--role", "viewer", "--subject", "bob", "--json", state_dir=tmp_path)
    printed = json.loads(result.stdout)
    assert (printed["subject"], printed["role"], printed["kid"]) == ("bob", "viewer", keys.kid)
    claims = jwt.decode(printed["token"], options={"verify_signature": False})
    assert (claims["jti"], claims["iss"], claims["aud"]) == (
        printed["jti"],
        LOCAL_ISSUER,
        LOCAL_AUDIENCE,
    )
    assert printed["expires_at"].endswith("Z")


def test_the_state_folder_may_be_given_as_an_option(tmp_path: Path) -> None:
    api_keys(tmp_path / "stack")
    result = waybill(
        "issue", "--role", "admin", "--subject", "ops", "--state-dir", str(tmp_path / "stack")
    )
    assert result.returncode == 0, result.stderr


def test_the_key_folder_and_files_are_the_owner_s_only(tmp_path: Path) -> None:
    keys = api_keys(tmp_path)
    keys.rotate()
    keys.revoke("abc")
    assert stat.S_IMODE(keys.folder.stat().st_mode) == 0o700
    for path in keys.folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert {p.name for p in keys.folder.iterdir()} == {
        "signing-key.pem",
        "jwks.json",
        "revoked-jti",
    }


def test_a_key_is_kept_across_runs(tmp_path: Path) -> None:
    assert api_keys(tmp_path).kid == api_keys(tmp_path).kid


def test_a_revoked_token_is_refused(tmp_path: Path) -> None:
    keys = api_keys(tmp_path)
    issued = keys.issue("viewer", subject="mallory", ttl=timedelta(hours=1))
    check = verifier(keys)
    assert asyncio.run(check.verify(issued.token)).subject == "mallory"
    result = waybill("revoke", issued.token_id, state_dir=tmp_path)
    assert result.stdout.strip() == (
        f"revoked {issued.token_id}: services refuse it from their next request"
    )
    with pytest.raises(TokenRefused, match="revoked"):
        asyncio.run(check.verify(issued.token))


def test_retiring_with_one_key_trusted_retires_nothing(tmp_path: Path) -> None:
    api_keys(tmp_path)
    result = waybill("retire", state_dir=tmp_path)
    assert result.stdout.strip() == "nothing to retire: one key is trusted"


def test_one_old_key_may_be_retired_by_its_kid(tmp_path: Path) -> None:
    keys = api_keys(tmp_path)
    first = keys.kid
    second = keys.rotate()
    third = keys.rotate()
    # With "=": a key id is a base64url thumbprint and may start with "-".
    result = waybill("retire", f"--kid={second}", state_dir=tmp_path)
    assert result.stdout.strip() == f"retired: {second}"
    assert [k["kid"] for k in keys.trusted()] == [first, third]


def _missing_keys(tmp: Path) -> list[str]:
    return ["issue", "--role", "viewer", "--subject", "a", "--state-dir", str(tmp / "nothing")]


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (
            _missing_keys,
            2,
            "no API signing key in {tmp}/nothing/api: `waybill up` makes one (or point "
            "--state-dir / WAYBILL_STATE_DIR at the folder of the running stack)",
        ),
        (
            lambda t: ["issue", "--role", "viewer", "--subject", "a", "--ttl", "soon"],
            2,
            "'soon' is not a duration: write e.g. 90s, 15m, 1h, 1h30m or 7d",
        ),
        (
            lambda t: ["issue", "--role", "viewer", "--subject", "a", "--ttl", "0m"],
            2,
            "'0m' is no time at all: a token must live a while",
        ),
        (
            lambda t: ["issue", "--role", "viewer", "--subject", "a", "--ttl", "31d"],
            2,
            "'31d' is too long: a local token lives 30d at most",
        ),
        (
            lambda t: ["issue", "--role", "root", "--subject", "a"],
            2,
            "argument --role: invalid choice: 'root'",
        ),
        (
            lambda t: ["issue", "--role", "viewer", "--subject", " "],
            2,
            "a token needs a subject: who is calling (e.g. alice)",
        ),
        (lambda t: ["retire", "--kid", "nope"], 2, "no key nope in "),
        # A key id that starts with "-" (1 in 64 do) is read as the option's value.
        (lambda t: ["retire", "--kid=-nope"], 2, "no key -nope in "),
        (lambda t: ["revoke", "two words"], 2, "'two words' is not a token id"),
    ],
    ids=[
        "no key",
        "not a duration",
        "no time",
        "too long",
        "unknown role",
        "blank subject",
        "unknown kid",
        "unknown kid starting with a dash",
        "bad jti",
    ],
)
def test_mistakes_are_answered_in_one_line(
    tmp_path: Path, arguments: object, code: int, message: str
) -> None:
    api_keys(tmp_path)
    result = waybill(*arguments(tmp_path), state_dir=tmp_path)  # type: ignore[operator]
    assert result.returncode == code
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_signing_key_cannot_be_retired(tmp_path: Path) -> None:
    keys = api_keys(tmp_path)
    result = waybill("retire", f"--kid={keys.kid}", state_dir=tmp_path)
    assert result.returncode == 2
    assert "is the key tokens are signed with: `waybill token rotate` first" in result.stderr


def test_a_damaged_signing_key_says_how_to_recover(tmp_path: Path) -> None:
    keys = api_keys(tmp_path)
    keys.signing_key_file.write_text("not a key")
    result = waybill("issue", "--role", "viewer", "--subject", "a", state_dir=tmp_path)
    assert result.returncode == 2
    assert f"delete the folder {keys.folder} to have a new key made" in result.stderr
