"""API tokens: checking a bearer JWT and who it says the caller is.

A token is accepted when its ``alg`` is the one its key is pinned to
(:mod:`waybill_runtime.security.api_keys`), its signature holds, ``iss`` and
``aud`` are the configured ones, ``exp`` has not passed and ``nbf``/``iat``
have (with a small leeway), it names a subject, and its ``jti`` is not on the
revocation list. Anything else is refused with a reason that goes to the log
only: callers learn that the token was refused, never which check failed.

Roles are ordered: ``viewer`` reads, ``operator`` also acts (replays a dead
letter, resolves an exception, holds an order), ``admin`` may do anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import jwt

from waybill_runtime.security.api_keys import KeySource, WatchedFile

__all__ = [
    "ROLES",
    "Principal",
    "RevokedTokens",
    "Role",
    "TokenRefused",
    "TokenRules",
    "TokenVerifier",
    "grants",
    "parse_revoked",
]

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
"""The roles, weakest first; each grants what the ones before it grant."""

_RANK = {role: rank for rank, role in enumerate(ROLES)}


def grants(held: Iterable[Role], needed: Role) -> bool:
    """Whether roles ``held`` allow what needs ``needed`` (admin implies all)."""
    return any(_RANK[role] >= _RANK[needed] for role in held)


@dataclass(frozen=True)
class Principal:
    """The caller of an API, as its verified token says."""

    subject: str
    roles: frozenset[Role]
    token_id: str | None
    expires_at: datetime

    @property
    def role(self) -> Role | None:
        """The strongest role held (None: the token grants none)."""
        return max(self.roles, key=_RANK.__getitem__, default=None)

    def may(self, needed: Role) -> bool:
        return grants(self.roles, needed)


class TokenRefused(Exception):
    """The token is not accepted; ``reason`` is for the log, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenRules:
    """What every accepted token carries."""

    issuer: str
    audience: str
    leeway_s: float = 30.0
    roles_claim: str = "roles"


def parse_revoked(data: bytes) -> frozenset[str]:
    """Token ids from a revocation list: one a line; blank lines and ``#`` comments skipped."""
    lines = (line.split("#", 1)[0].strip() for line in data.decode("utf-8").splitlines())
    return frozenset(line for line in lines if line)


class RevokedTokens:
    """The revocation list (WAYBILL_API_REVOKED_JTI_FILE), read again when it changes."""

    def __init__(self, path: Path, *, setting: str = "WAYBILL_API_REVOKED_JTI_FILE") -> None:
        self._file = WatchedFile(path, parse_revoked, setting=setting)

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._file.value


# pyjwt's errors, as the log names them.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidIssuedAtError, "bad iat"),
)


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"no {error.claim} claim"
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return f"malformed ({type(error).__name__})"


def _roles(value: Any) -> frozenset[Role]:
    names = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    return frozenset(name for name in names if isinstance(name, str) and name in _RANK)


class TokenVerifier:
    """Checks bearer tokens against one key source, the rules and a revocation list."""

    def __init__(
        self, keys: KeySource, rules: TokenRules, *, revoked: RevokedTokens | None = None
    ) -> None:
        self.keys = keys
        self.rules = rules
        self.revoked = revoked
        required = ["exp", "iss", "aud", "sub"]
        if revoked is not None:
            # A token without an id could never be revoked: with a list, none is accepted.
            required.append("jti")
        self._required = required

    async def verify(self, token: str) -> Principal:
        """The caller ``token`` names; :class:`TokenRefused` when it is not accepted.

        Raises :class:`~waybill_runtime.security.api_keys.KeysUnavailable` when the
        keys cannot be read at all (the caller is not refused: the service cannot tell).
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenRefused(_reason(error)) from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in self.keys.algorithms:
            raise TokenRefused(f"algorithm {algorithm!r} not accepted")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused("malformed kid")
        key = await self.keys.key_for(kid)
        if key is None:
            raise TokenRefused(f"unknown kid {kid!r}")
        if key.algorithm != algorithm:
            raise TokenRefused(f"algorithm {algorithm!r} is not the one of key {kid!r}")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self.rules.audience,
                issuer=self.rules.issuer,
                leeway=self.rules.leeway_s,
                options={"require": self._required},
            )
        except jwt.PyJWTError as error:
            raise TokenRefused(_reason(error)) from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        subject, token_id, expires = claims.get("sub"), claims.get("jti"), claims.get("exp")
        if not isinstance(subject, str) or not subject:
            raise TokenRefused("malformed sub")
        if token_id is not None and not isinstance(token_id, str):
            raise TokenRefused("malformed jti")
        if self.revoked is not None and token_id in self.revoked:
            raise TokenRefused(f"revoked (jti {token_id})")
        assert isinstance(expires, int | float)  # pyjwt checked it is a number
        return Principal(
            subject=subject,
            roles=_roles(claims.get(self.rules.roles_claim)),
            token_id=token_id,
            expires_at=datetime.fromtimestamp(expires, UTC),
        )
