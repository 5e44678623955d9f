"""The local signing key of API tokens: what `waybill up` and `waybill token` use.

It lives in ``<state folder>/api/`` (folder 0700, files 0600):

``signing-key.pem``
    The Ed25519 private key tokens are signed with (EdDSA). Never sent anywhere.
``jwks.json``
    The public keys services trust (WAYBILL_API_JWKS_FILE): the signing key's,
    and during a rotation the previous one's too.
``revoked-jti``
    Revoked token ids, one a line (WAYBILL_API_REVOKED_JTI_FILE).

A key is named (``kid``) by its RFC 7638 thumbprint. Rotation: :meth:`rotate`
makes a new signing key and adds it to the JWKS beside the old one (tokens of
both are accepted); :meth:`retire` then removes the old one (its tokens stop
working as soon as services see the file change). Files are replaced
atomically, so a service never reads half a JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from waybill_runtime.errors import UserFacingError
from waybill_runtime.private_files import write_private
from waybill_runtime.security.api_tokens import Role

__all__ = [
    "LOCAL_AUDIENCE",
    "LOCAL_ISSUER",
    "IssuedToken",
    "LocalApiKeys",
    "LocalKeyError",
    "api_folder",
    "public_jwk",
]

LOCAL_ISSUER = "waybill-local"
"""The issuer of locally signed tokens (never an identity provider's)."""
LOCAL_AUDIENCE = "waybill-api"

_SIGNING_KEY = "signing-key.pem"
_JWKS = "jwks.json"
_REVOKED = "revoked-jti"
_REVOKED_HEADER = "# Revoked API token ids (jti), one a line: `waybill token revoke JTI`.\n"


class LocalKeyError(UserFacingError):
    """The local signing key is missing or cannot be read or written."""


def api_folder(state_dir: Path) -> Path:
    """Where a local stack keeps its API signing key."""
    return state_dir / "api"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public: Ed25519PublicKey) -> dict[str, str]:
    """The public key as a JWK, named by its RFC 7638 thumbprint."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = _b64(hashlib.sha256(canonical).digest())
    return {**members, "kid": kid, "alg": "EdDSA", "use": "sig"}


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and what it says."""

    token: str
    subject: str
    role: Role
    token_id: str
    expires_at: datetime
    kid: str


@dataclass(frozen=True)
class LocalApiKeys:
    """The local signing key, the JWKS services trust, the revocation list (in ``folder``)."""

    folder: Path
    issuer: str = LOCAL_ISSUER
    audience: str = LOCAL_AUDIENCE

    @classmethod
    def ensure(cls, state_dir: Path) -> LocalApiKeys:
        """The keys of ``state_dir``, made when missing (kept across runs)."""
        keys = cls(api_folder(state_dir.expanduser().resolve()))
        try:
            keys.folder.mkdir(parents=True, exist_ok=True)
            keys.folder.chmod(0o700)
            if not keys.signing_key_file.exists():
                keys._new_signing_key(keep_trusted=False)
            if not keys.revoked_file.exists():
                write_private(keys.revoked_file, _REVOKED_HEADER.encode())
        except OSError as error:
            raise LocalKeyError(
                f"cannot prepare the API key folder {keys.folder} ({error.strerror or error}): "
                "choose another state folder with --state-dir or WAYBILL_STATE_DIR"
            ) from None
        return keys

    @classmethod
    def existing(cls, state_dir: Path) -> LocalApiKeys:
        """The keys of ``state_dir``; a clear error when there are none (nothing is made)."""
        keys = cls(api_folder(state_dir.expanduser().resolve()))
        if not keys.signing_key_file.is_file():
            raise LocalKeyError(
                f"no API signing key in {keys.folder}: `waybill up` makes one (or point "
                "--state-dir / WAYBILL_STATE_DIR at the folder of the running stack)"
            )
        return keys

    # -- the files ---------------------------------------------------------------------

    @property
    def signing_key_file(self) -> Path:
        return self.folder / _SIGNING_KEY

    @property
    def jwks_file(self) -> Path:
        return self.folder / _JWKS

    @property
    def revoked_file(self) -> Path:
        return self.folder / _REVOKED

    def settings(self) -> dict[str, str]:
        """The settings (by field name) that make a service trust these keys."""
        return {
            "api_jwks_file": str(self.jwks_file),
            "api_issuer": self.issuer,
            "api_audience": self.audience,
            "api_revoked_jti_file": str(self.revoked_file),
        }

    def _signing_key(self) -> Ed25519PrivateKey:
        try:
            key = serialization.load_pem_private_key(
                self.signing_key_file.read_bytes(), password=None
            )
        except (OSError, ValueError) as error:
            raise LocalKeyError(
                f"cannot read the API signing key {self.signing_key_file} ({error}): delete "
                f"the folder {self.folder} to have a new key made"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise LocalKeyError(f"{self.signing_key_file} holds no Ed25519 key")
        return key

    def trusted(self) -> list[dict[str, Any]]:
        """The JWKS's keys, as JWKs (the signing key's last)."""
        try:
            document = json.loads(self.jwks_file.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise LocalKeyError(f"cannot read {self.jwks_file} ({error})") from None
        keys: list[dict[str, Any]] = document.get("keys", [])
        return keys

    def _write_jwks(self, keys: list[dict[str, Any]]) -> None:
        document = json.dumps({"keys": keys}, indent=2) + "\n"
        write_private(self.jwks_file, document.encode())

    def _new_signing_key(self, *, keep_trusted: bool) -> str:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        jwk = public_jwk(key.public_key())
        # The JWKS first: a token of the new key must never meet a JWKS without it.
        self._write_jwks([*(self.trusted() if keep_trusted else []), jwk])
        write_private(self.signing_key_file, pem)
        return jwk["kid"]

    # -- what people do with them ---------------------------------------------------------

    @property
    def kid(self) -> str:
        """The kid of the key tokens are signed with now."""
        return public_jwk(self._signing_key().public_key())["kid"]

    def issue(
        self,
        role: Role,
        *,
        subject: str,
        ttl: timedelta,
        now: datetime | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """A token for ``subject`` with ``role``, valid for ``ttl`` from ``now``.

        ``extra_claims`` are added last (tests use them to make tokens that must fail).
        """
        if not subject.strip():
            raise LocalKeyError("a token needs a subject: who is calling (e.g. alice)")
        if ttl <= timedelta(0):
            raise LocalKeyError(f"a token must live a while, not {ttl}")
        key = self._signing_key()
        kid = public_jwk(key.public_key())["kid"]
        issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
        expires_at = issued_at + ttl
        token_id = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "roles": [role],
            "jti": token_id,
            "iat": int(issued_at.timestamp()),
            "nbf": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            **(extra_claims or {}),
        }
        token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})
        return IssuedToken(
            token=token,
            subject=subject,
            role=role,
            token_id=token_id,
            expires_at=expires_at,
            kid=kid,
        )

    def rotate(self) -> str:
        """A new signing key, trusted beside the old ones; returns its kid."""
        return self._new_signing_key(keep_trusted=True)

    def retire(self, kid: str | None = None) -> list[str]:
        """Stop trusting ``kid`` (None: every key but the signing key); the kids removed."""
        current = self.kid
        if kid == current:
            raise LocalKeyError(
                f"{kid} is the key tokens are signed with: `waybill token rotate` first"
            )
        keys = self.trusted()
        kids = [str(k.get("kid")) for k in keys]
        if kid is None:
            retiring = [k for k in kids if k != current]
        elif kid in kids:
            retiring = [kid]
        else:
            raise LocalKeyError(f"no key {kid} in {self.jwks_file} (it holds {', '.join(kids)})")
        self._write_jwks([k for k in keys if k.get("kid") not in retiring])
        return retiring

    def revoke(self, token_id: str) -> None:
        """Add ``token_id`` to the revocation list (services see it at their next request)."""
        if not token_id.strip() or any(ch.isspace() or ch == "#" for ch in token_id):
            raise LocalKeyError(f"{token_id!r} is not a token id (the jti of a token)")
        existing = self.revoked_file.read_bytes() if self.revoked_file.exists() else b""
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        write_private(self.revoked_file, existing + token_id.encode() + b"\n")
