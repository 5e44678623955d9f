"""What the demo's calls to the sandboxes' admin APIs and the services share."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

__all__ = ["json_of", "path_part"]


def path_part(ref: str) -> str:
    """``ref`` (``WH/OUT/00001``) as one part of a URL path."""
    return quote(ref, safe="")


async def json_of(response: aiohttp.ClientResponse) -> Any:
    """The answer's JSON; an error answer is a RuntimeError naming the call and the answer."""
    if response.status >= 400:
        raise RuntimeError(
            f"{response.method} {response.url} -> {response.status}: {await response.text()}"
        )
    return await response.json()
