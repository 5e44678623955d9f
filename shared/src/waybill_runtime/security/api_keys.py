"""The keys API tokens are checked with: a JWKS (a file or a URL) or a local HS256 secret.

Every key is pinned to the one algorithm its type allows: an RSA key to RS256,
an EC P-256 key to ES256, an Ed25519 key to EdDSA, the shared secret to HS256.
A token's ``alg`` header must name exactly that algorithm, so a token cannot
choose how it is checked (``alg: none``, or HS256 "signed" with a public key).

Keys are found by ``kid``; a JWKS may hold several at once, which is how keys
rotate without downtime. A JWKS file is read again when it changes; a JWKS URL
is kept for a while and read again early when a token names a ``kid`` it does
not hold, no more often than a set minimum.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MIN_HS256_SECRET_BYTES",
    "ApiKeyError",
    "Hs256Secret",
    "JwksFile",
    "JwksUrl",
    "KeySource",
    "KeysUnavailable",
    "VerificationKey",
    "WatchedFile",
    "parse_jwks",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")
"""The algorithms a JWKS key may be used with (each key with the one its type allows)."""
MIN_HS256_SECRET_BYTES = 32
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 1_048_576
_FETCH_TIMEOUT_S = 5.0


class ApiKeyError(ValueError):
    """A JWKS, secret or revocation list Waybill cannot use; the message names it."""


class KeysUnavailable(Exception):
    """The keys cannot be read now and none were read before (a JWKS URL that is down)."""


@dataclass(frozen=True)
class VerificationKey:
    """A key that checks token signatures, and the one algorithm it is used with."""

    kid: str | None
    algorithm: str
    key: Any  # a cryptography public key, or the HS256 secret's bytes


class KeySource(Protocol):
    """Where the keys come from."""

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The ``alg`` values a token checked by this source may name."""
        ...

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        """The key named ``kid``; None when the source holds no such key."""
        ...

    async def aclose(self) -> None: ...


# -- JWKS documents ------------------------------------------------------------------


def _pinned_algorithm(jwk: Mapping[str, Any]) -> str | None:
    """The algorithm a JWK's type allows (None: a key type Waybill does not use)."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        return "RS256"
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    return None


def _verification_key(jwk: Any, index: int) -> VerificationKey | str:
    """The key of one JWKS entry, or why it is left out."""
    if not isinstance(jwk, dict):
        return f"key {index} is not a JSON object"
    kid = jwk.get("kid")
    name = f"key {kid!r}" if isinstance(kid, str) and kid else f"key {index}"
    if not isinstance(kid, str) or not kid:
        return f"{name} has no kid"
    if jwk.get("use", "sig") != "sig":
        return f"{name} is not a signing key (use {jwk.get('use')!r})"
    if "d" in jwk:
        return f"{name} holds a private key: publish only public keys"
    algorithm = _pinned_algorithm(jwk)
    if algorithm is None:
        return f"{name} is of a type Waybill does not use (RS256, ES256 and EdDSA only)"
    if jwk.get("alg", algorithm) != algorithm:
        return (
            f"{name} names alg {jwk.get('alg')!r}; a {jwk.get('kty')} key is used with {algorithm}"
        )
    try:
        key = jwt.PyJWK(jwk, algorithm=algorithm).key
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        return f"{name} is not a valid {algorithm} key ({error})"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"{name} has {key.key_size} bits; RSA keys need {MIN_RSA_BITS} at least"
    return VerificationKey(kid=kid, algorithm=algorithm, key=key)


def parse_jwks(document: bytes, origin: str) -> dict[str, VerificationKey]:
    """The usable signing keys of a JWKS document, by kid; unusable ones are logged and left out.

    Raises :class:`ApiKeyError` when the document is no JWKS or holds no usable key.
    """
    try:
        parsed = json.loads(document)
    except (ValueError, UnicodeDecodeError):
        raise ApiKeyError(f'{origin} is not JSON: expected a JWKS ({{"keys": [...]}})') from None
    keys = parsed.get("keys") if isinstance(parsed, dict) else None
    if not isinstance(keys, list):
        raise ApiKeyError(f'{origin} is not a JWKS: expected an object with a "keys" list')
    found: dict[str, VerificationKey] = {}
    for index, jwk in enumerate(keys):
        key = _verification_key(jwk, index)
        if isinstance(key, str):
            logger.warning("%s: %s; it is not used", origin, key)
        elif key.kid in found:
            logger.warning("%s: kid %r appears twice; the first is used", origin, key.kid)
        else:
            assert key.kid is not None
            found[key.kid] = key
    if not found:
        raise ApiKeyError(
            f"{origin} holds no usable signing key: expected RS256, ES256 or EdDSA public keys, "
            "each with a kid"
        )
    return found


# -- files read again when they change ------------------------------------------------


def _signature(path: Path) -> tuple[int, int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


class WatchedFile(Generic[T]):
    """A file's parsed content, read again whenever the file changes.

    The first read happens at once and its errors are raised (the service does
    not start). A later change that cannot be read or parsed keeps the last good
    content and is logged once, so a half-written file never opens the API or
    locks everybody out.
    """

    def __init__(self, path: Path, parse: Callable[[bytes], T], *, setting: str) -> None:
        self.path = path
        self._parse = parse
        self._setting = setting
        try:
            self._seen = _signature(path)
            data = path.read_bytes()
        except OSError as error:
            raise ApiKeyError(
                f"{setting}={str(path)!r} cannot be read ({error.strerror or error}): "
                "check the path and that this user may read it"
            ) from None
        try:
            self._value = parse(data)
        except ValueError as error:
            raise ApiKeyError(f"{setting} is not valid: {error}") from None
        self._complained: tuple[Any, ...] | None = None

    @property
    def value(self) -> T:
        try:
            seen = _signature(self.path)
        except OSError as error:
            self._complain(("missing",), f"cannot be read ({error.strerror or error})")
            return self._value
        if seen != self._seen:
            self._seen = seen
            try:
                self._value = self._parse(self.path.read_bytes())
            except (OSError, ValueError) as error:
                self._complain(seen, str(error))
            else:
                logger.info("%s read again: %s changed", self._setting, self.path)
        return self._value

    def _complain(self, seen: tuple[Any, ...], problem: str) -> None:
        if self._complained != seen:
            self._complained = seen
            logger.warning(
                "%s=%s %s; the content read before stays in use", self._setting, self.path, problem
            )


# -- the sources ------------------------------------------------------------------------


class JwksFile:
    """Keys from a JWKS file (WAYBILL_API_JWKS_FILE), read again when it changes."""

    algorithms = ASYMMETRIC_ALGORITHMS

    def __init__(self, path: Path, *, setting: str = "WAYBILL_API_JWKS_FILE") -> None:
        self._file = WatchedFile(path, lambda data: parse_jwks(data, str(path)), setting=setting)

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        return None if kid is None else self._file.value.get(kid)

    async def aclose(self) -> None:
        return None


class JwksUrl:
    """Keys from a JWKS URL (WAYBILL_API_JWKS_URL): kept ``refresh_s``, read again early
    for an unknown kid, never more often than every ``min_refresh_s``."""

    algorithms = ASYMMETRIC_ALGORITHMS

    def __init__(
        self,
        url: str,
        *,
        refresh_s: float,
        min_refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._refresh_s = refresh_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._keys: dict[str, VerificationKey] | None = None
        self._read_at: float | None = None  # last successful read
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        if kid is None:
            return None
        if self._keys is None or self._stale():
            await self._refresh(early=False)
        elif kid not in self._keys:
            await self._refresh(early=True)
        if self._keys is None:
            raise KeysUnavailable(f"the JWKS at {self.url} could not be read")
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._read_at is not None and self._clock() - self._read_at >= self._refresh_s

    async def _refresh(self, *, early: bool) -> None:
        async with self._lock:
            now = self._clock()
            if self._tried_at is not None and now - self._tried_at < self._min_refresh_s:
                return  # read moments ago (maybe by a request that waited on the lock)
            self._tried_at = now
            try:
                keys = await self._fetch()
            except (aiohttp.ClientError, TimeoutError, OSError, ApiKeyError) as error:
                logger.warning("cannot read the API keys at %s: %s", self.url, error)
                return
            self._keys, self._read_at = keys, now
            if early:
                logger.info("API keys read again from %s: a token named an unknown kid", self.url)

    async def _fetch(self) -> dict[str, VerificationKey]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=_FETCH_TIMEOUT_S)
            )
        async with self._session.get(self.url, allow_redirects=False) as response:
            if response.status != 200:
                raise ApiKeyError(f"{self.url} answered {response.status}")
            body = await response.content.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ApiKeyError(f"{self.url} sent more than {MAX_JWKS_BYTES} bytes")
        return parse_jwks(body, self.url)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _secret(data: bytes, path: Path) -> bytes:
    secret = data.strip()
    if len(secret) < MIN_HS256_SECRET_BYTES:
        raise ApiKeyError(
            f"{path} holds {len(secret)} bytes: an HS256 secret needs "
            f"{MIN_HS256_SECRET_BYTES} at least"
        )
    return secret


class Hs256Secret:
    """A shared secret (WAYBILL_API_HS256_SECRET_FILE), for local use only; any kid."""

    algorithms = ("HS256",)

    def __init__(self, path: Path, *, setting: str = "WAYBILL_API_HS256_SECRET_FILE") -> None:
        self._file = WatchedFile(path, lambda data: _secret(data, path), setting=setting)

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        return VerificationKey(kid=kid, algorithm="HS256", key=self._file.value)

    async def aclose(self) -> None:
        return None
