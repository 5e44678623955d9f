"""Signing keys of every kind the API accepts, and tokens good and bad, for the access tests.

An identity provider's keys as a JWKS (RS256, ES256, EdDSA), valid claims to
start from, and the tokens an attacker would try: unsigned (``alg: none``) and
HS256 "signed" with a public key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://id.example.test/"
AUDIENCE = "waybill-api"
_DROP = object()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        exporter: Any = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[
            self.algorithm
        ]
        document: dict[str, Any] = json.loads(exporter.to_jwk(self.public))
        return {**document, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        headers = {k: v for k, v in {"kid": self.kid, **header}.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers=headers)

    def public_pem(self) -> bytes:
        return bytes(
            self.public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def rsa_key(kid: str = "rsa-1", bits: int = 2048) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=bits))


def ec_key(kid: str = "ec-1", curve: ec.EllipticCurve | None = None) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(curve or ec.SECP256R1()))


def ed_key(kid: str = "ed-1") -> SigningKey:
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def jwks(*keys: SigningKey | dict[str, Any]) -> dict[str, Any]:
    return {"keys": [k.jwk() if isinstance(k, SigningKey) else k for k in keys]}


def write_jwks(path: Path, *keys: SigningKey | dict[str, Any]) -> Path:
    """Replace ``path`` with a JWKS of ``keys`` (atomically, as a deployment would)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temporary.write_text(json.dumps(jwks(*keys)))
    temporary.replace(path)
    return path


def claims(
    role: str | list[str] | None = "viewer", *, subject: str = "alice", **changes: Any
) -> dict[str, Any]:
    """Claims an accepted token carries; ``changes`` replace some (``drop`` removes one)."""
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    if role is not None:
        base["roles"] = [role] if isinstance(role, str) else role
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


drop = _DROP
"""A claim value that removes the claim: ``claims(exp=drop)``."""


def at(delta: timedelta) -> int:
    """A NumericDate ``delta`` from now."""
    return int((datetime.now(UTC) + delta).timestamp())


def _segment(document: dict[str, Any]) -> str:
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(body: dict[str, Any], **header: Any) -> str:
    """A token with ``alg: none`` and no signature."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT', **header})}.{_segment(body)}."


def hs256_signed_with(secret: bytes, body: dict[str, Any], **header: Any) -> str:
    """An HS256 token with ``secret`` as the HMAC key (pyjwt refuses to make this one when
    the secret is a public key: the algorithm-confusion attack)."""
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', **header})}.{_segment(body)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def api_settings(jwks_file: Path, **more: Any) -> dict[str, Any]:
    """Settings that make a service trust the JWKS in ``jwks_file``."""
    return {
        "api_jwks_file": str(jwks_file),
        "api_issuer": ISSUER,
        "api_audience": AUDIENCE,
        **more,
    }
