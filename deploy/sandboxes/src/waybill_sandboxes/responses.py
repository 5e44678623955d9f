"""JSON in and out of sandbox handlers: one place for encoding and body validation."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

__all__ = ["BadBody", "json_response", "read_json"]

T = TypeVar("T")


class BadBody(ValueError):
    """A request body that is not JSON or does not match the expected shape.

    The message says which field is wrong; each sandbox wraps it in its
    partner's error format.
    """


def json_response(
    payload: Any, *, status: int = 200, content_type: str = "application/json"
) -> web.Response:
    """Encode ``payload`` (structs, dicts, datetimes...) with msgspec."""
    return web.Response(status=status, body=msgspec.json.encode(payload), content_type=content_type)


async def read_json(request: web.Request, shape: type[T]) -> T:
    """Decode the request body into ``shape``, or raise :class:`BadBody`."""
    raw = await request.read()
    if not raw.strip():
        raise BadBody("the request body is empty: send a JSON object")
    try:
        return msgspec.json.decode(raw, type=shape)
    except msgspec.ValidationError as error:
        raise BadBody(f"the request body is invalid: {error}") from error
    except msgspec.DecodeError as error:
        raise BadBody(f"the request body is not valid JSON: {error}") from error
