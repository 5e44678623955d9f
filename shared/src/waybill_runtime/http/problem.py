"""HTTP errors as RFC 9457 problem details (``application/problem+json``).

Handlers raise :class:`ProblemError`; :func:`problem_middleware` turns it, the
errors aiohttp raises itself (404, 405, 413, ...) and unexpected exceptions into
problem bodies. An unexpected exception is logged in full and answered with a
plain 500: no traceback or exception text leaves the service. Every 4xx answer
is logged in one line naming what was wrong, with secrets in the path redacted.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, TypeVar, cast

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from waybill_runtime.http.redaction import loggable_path
from waybill_runtime.json_input import MAX_DEPTH, JsonTooDeep, check_depth, decode_bounded

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "ProblemError",
    "answer_error",
    "decode_json",
    "problem_middleware",
    "problem_response",
    "read_json",
    "read_json_body",
    "require_json_content",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

PROBLEM_CONTENT_TYPE = "application/problem+json"

# Headers of an aiohttp error worth keeping in the problem response.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING_FIELD = re.compile(r"missing required field `(?P<field>[^`]+)`")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+|'[^']*'|\"[^\"]*\")\]")


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    type_: str = "about:blank",
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> web.Response:
    """A problem-details response; ``extensions`` become extra members of the body."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(extensions)
    return web.Response(
        body=msgspec.json.encode(body),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


class ProblemError(Exception):
    """Raise from a handler to answer with a problem-details body."""

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.status = status
        self.title = title or _title(status)
        self.detail = detail
        self.type_ = type_
        self.headers = dict(headers or {})
        self.extensions = extensions
        super().__init__(f"{status} {self.title}: {detail}" if detail else f"{status} {self.title}")

    def response(self) -> web.Response:
        """This error as a problem-details response."""
        return problem_response(
            self.status,
            self.title,
            self.detail,
            self.type_,
            headers=self.headers,
            **self.extensions,
        )


def _detail_for(request: web.Request, error: web.HTTPException) -> str | None:
    if error.status == 404:
        return f"there is nothing at {request.path}"
    if error.status == 405:
        allowed = error.headers.get("Allow", "")
        return f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    text = error.text or ""
    # aiohttp's default text just repeats the status line; anything else is a real detail.
    return text if text and text != f"{error.status}: {error.reason}" else None


def _log_refusal(request: web.Request, status: int, detail: str | None) -> None:
    """One line per 4xx answer: who was refused, where, and why (secrets in the path redacted)."""
    path = loggable_path(request)
    reason = detail or _title(status)
    if path != request.path:
        reason = reason.replace(request.path, path)
    level = logging.WARNING if status in (401, 403) else logging.INFO
    logger.log(
        level,
        "answered %d to %s %s from %s: %s",
        status,
        request.method,
        path,
        request.remote or "?",
        reason,
    )


def answer_error(request: web.Request, error: Exception) -> web.StreamResponse:
    """The problem-details answer to ``error`` raised while handling ``request``.

    Re-raises what is not to be answered here: redirects and the like, and an
    aiohttp error that already is a problem. Called from an ``except`` block.
    """
    if isinstance(error, ProblemError):
        if 400 <= error.status < 500:
            _log_refusal(request, error.status, error.detail)
        return error.response()
    if isinstance(error, web.HTTPException):
        if error.status < 400 or error.content_type == PROBLEM_CONTENT_TYPE:
            raise error  # redirects and the like, or already a problem
        kept = {name: error.headers[name] for name in _KEPT_HEADERS if name in error.headers}
        detail = _detail_for(request, error)
        if error.status < 500:
            _log_refusal(request, error.status, detail)
        return problem_response(error.status, _title(error.status), detail, headers=kept)
    logger.exception("unhandled error answering %s %s", request.method, loggable_path(request))
    return problem_response(
        500,
        _title(500),
        "the service failed to handle this request; the error is in its logs",
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error of the wrapped handlers with a problem-details body.

    A service's own app does this in its one middleware (:mod:`waybill_runtime.http.app`);
    this is for apps of their own (tests, sandboxes)."""
    try:
        return await handler(request)
    except Exception as error:  # CancelledError is a BaseException: it passes
        return answer_error(request, error)


def _json_pointer(path: str) -> str:
    """msgspec's ``$.parcels[0].weight`` path → the JSON pointer ``#/parcels/0/weight``."""
    parts = []
    for match in _PATH_PART.finditer(path):
        part = match.group(1) if match.group(1) is not None else match.group(2).strip("'\"")
        parts.append(part.replace("~", "~0").replace("/", "~1"))
    return "#/" + "/".join(parts) if parts else "#"


def _validation_problem(error: msgspec.ValidationError) -> ProblemError:
    message = str(error)
    found = _PATH.search(message)
    path = found.group("path") if found else ""
    reason = message[: found.start()] if found else message
    missing = _MISSING_FIELD.search(reason)
    if missing:
        path += f".{missing.group('field')}"
    pointer = _json_pointer(path)
    return ProblemError(
        422,
        "Unprocessable Content",
        f"{reason} at {pointer}",
        errors=[{"detail": reason, "pointer": pointer}],
    )


@functools.lru_cache(maxsize=256)
def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_)


def require_json_content(request: web.Request) -> None:
    """415 unless the request declares a JSON body (``application/json`` or ``*+json``)."""
    media_type = request.content_type
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ProblemError(
            415,
            "Unsupported Media Type",
            f"send the body as application/json (got {media_type or 'no content type'})",
        )


async def read_json_body(request: web.Request, *, max_depth: int = MAX_DEPTH) -> bytes:
    """The raw body of a JSON request, checked before anyone decodes it.

    415 when it is not declared JSON, 413 when it is over the size limit, 400
    when it is empty or nests deeper than ``max_depth``. Webhooks that verify a
    signature of the raw bytes read them here.
    """
    require_json_content(request)
    body = await request.read()
    if not body.strip():
        raise ProblemError(400, "Bad Request", "the request has no body: send a JSON document")
    try:
        check_depth(body, limit=max_depth)
    except JsonTooDeep as too_deep:
        raise _too_deep(too_deep.limit) from None
    return body


def _too_deep(limit: int) -> ProblemError:
    return ProblemError(
        400, "Bad Request", f"the body nests arrays or objects more than {limit} levels deep"
    )


async def read_json(request: web.Request, type_: type[T]) -> T:
    """Decode the request's JSON body into ``type_``, or answer with a problem.

    415 when the body is not JSON, 413 when it is over the size limit, 400 when
    it is not valid JSON or nested too deep, 422 (naming the field) when it
    does not fit ``type_``.
    """
    return decode_json(await read_json_body(request), type_)


def decode_json(body: bytes, type_: type[T]) -> T:
    """Decode a body :func:`read_json_body` returned into ``type_``, or raise the problem
    :func:`read_json` would (for webhooks that check a signature of the raw bytes first)."""
    try:
        decoded: T = decode_bounded(body, _decoder(cast(Any, type_)).decode)
    except JsonTooDeep as too_deep:
        raise _too_deep(too_deep.limit) from None
    except msgspec.ValidationError as error:
        raise _validation_problem(error) from None
    except msgspec.DecodeError as error:
        raise ProblemError(400, "Bad Request", f"the body is not valid JSON: {error}") from None
    return decoded
