"""The auditor's JSON API: an order's timeline, orders by stage (stuck ones first), dead letters.

``GET /orders/{ref}/timeline``
    Every event and command of the order in causal order, its stage, and
    the dead letters about it. Order refs contain slashes (``WH/OUT/00042``):
    send them as they are or URL-encoded (``WH%2FOUT%2F00042``).
``GET /orders?stage=&stuck=&limit=&cursor=``
    Orders, longest in their stage first.
``GET /dead-letters?service=&order_ref=&limit=&cursor=``
    Dead letters, newest first.

Bad query parameters are answered with a 400 problem naming the parameter;
an unknown order with a 404 problem.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, UnsetType

from waybill_auditor.causal import causal_order
from waybill_auditor.records import StoredMessage
from waybill_auditor.stages import Stage
from waybill_auditor.store import AuditStore, OrderRow, OrdersFilter, page_of
from waybill_auditor.views import (
    DeadLettersPage,
    OrdersPage,
    Timeline,
    dead_letter_view,
    order_view,
    timeline_entry,
)
from waybill_runtime.http import ProblemError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
STAGES = ", ".join(stage.value for stage in Stage)

_encode = msgspec.json.Encoder().encode

# The query parameters, described for the OpenAPI document; the handlers allow these names.
_Limit = Annotated[int, Meta(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}.")]
_Cursor = Annotated[str, Meta(description="next_cursor of the previous page.")]
_Stages = Annotated[str, Meta(description=f"Comma-separated stages: {STAGES}.")]
_Stuck = Annotated[bool, Meta(description="Only orders in their stage longer than its deadline.")]
_OfService = Annotated[str, Meta(description="Only the letters of this service.")]
_AboutOrder = Annotated[str, Meta(description="Only the letters about this order.")]


class OrdersQuery(msgspec.Struct, frozen=True, kw_only=True):
    """The query parameters of ``GET /orders``."""

    stage: _Stages | UnsetType = UNSET
    stuck: _Stuck = False
    limit: _Limit = DEFAULT_LIMIT
    cursor: _Cursor | UnsetType = UNSET


class DeadLettersQuery(msgspec.Struct, frozen=True, kw_only=True):
    """The query parameters of ``GET /dead-letters``."""

    service: _OfService | UnsetType = UNSET
    order_ref: _AboutOrder | UnsetType = UNSET
    limit: _Limit = DEFAULT_LIMIT
    cursor: _Cursor | UnsetType = UNSET


def _parameters(query: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(query.__struct_fields__)


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def _bad(parameter: str, detail: str) -> ProblemError:
    return ProblemError(
        400, "Bad Request", detail, invalid_params=[{"name": parameter, "reason": detail}]
    )


RecordedTimeline = tuple[OrderRow | None, list[StoredMessage], list[StoredMessage]]


async def recorded_timeline(store: AuditStore, order_ref: str) -> RecordedTimeline:
    """An order's row, messages and dead letters; 404 when the auditor knows nothing of it."""
    row, messages, letters = await store.timeline(order_ref)
    if row is None and not messages and not letters:
        raise ProblemError(
            404,
            "Not Found",
            f"the auditor has recorded nothing about order {order_ref}",
            order_ref=order_ref,
        )
    return row, messages, letters


def _json(document: Any) -> web.Response:
    return web.Response(body=_encode(document), content_type="application/json")


def _only(request: web.Request, allowed: frozenset[str]) -> None:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise _bad(
            unknown[0],
            f"unknown query parameter {unknown[0]!r}: use {', '.join(sorted(allowed))}",
        )


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise _bad(name, f"{name} is given {len(values)} times: give it once")
    return values[0] if values else None


def parse_limit(text: str | None) -> int:
    """The page size asked for: 1 to MAX_LIMIT, DEFAULT_LIMIT when absent."""
    if text is None:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise _bad("limit", f"limit {text!r} is not a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad("limit", f"limit {limit} is out of range: use 1 to {MAX_LIMIT}")
    return limit


def parse_stages(text: str | None) -> tuple[Stage, ...]:
    """Comma-separated stage names; every one must be a stage."""
    if text is None:
        return ()
    stages = []
    for name in (part.strip() for part in text.split(",")):
        try:
            stages.append(Stage(name))
        except ValueError:
            raise _bad("stage", f"stage {name!r} is not a stage: use one of {STAGES}") from None
    return tuple(stages)


def parse_flag(name: str, text: str | None) -> bool:
    """``true`` or ``false`` (also 1/0, yes/no); absent = false."""
    if text is None:
        return False
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise _bad(name, f"{name} {text!r} is not true or false")


def encode_cursor(position: Any) -> str:
    """An opaque cursor for a page position (JSON, base64url)."""
    return base64.urlsafe_b64encode(_encode(position)).decode().rstrip("=")


def decode_cursor(text: str, type_: Any) -> Any:
    """The position in a cursor made by :func:`encode_cursor`; 400 when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.json.decode(raw, type=type_)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise _bad(
            "cursor", "cursor is not one this API handed out: start again without it"
        ) from None


# What a cursor may hold: a stream sequence SQLite can compare, an order ref of a sane size.
_Sequence = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _OrdersCursor(msgspec.Struct, array_like=True, frozen=True):
    since: datetime
    order_ref: Annotated[str, msgspec.Meta(max_length=512)]


@dataclass(frozen=True, kw_only=True)
class AuditApi:
    """The request handlers, bound to one audit store and its settings."""

    store: AuditStore
    deadlines: Mapping[Stage, float]
    mask: bool = True
    clock: Callable[[], datetime] = utc_now

    def routes(self) -> list[web.RouteDef]:
        """The API's routes, for ``service.routes``."""
        return [
            web.get("/orders/{ref:.+}/timeline", self.timeline),
            web.get("/orders", self.orders),
            web.get("/dead-letters", self.dead_letters),
        ]

    async def timeline(self, request: web.Request) -> web.Response:
        """Every event and command of one order, in causal order."""
        _only(request, frozenset())
        # aiohttp decodes the path before matching: WH%2FOUT%2F1 arrives as WH/OUT/1.
        order_ref = request.match_info["ref"]
        row, messages, letters = await recorded_timeline(self.store, order_ref)
        now = self.clock()
        return _json(
            Timeline(
                order_ref=order_ref,
                order=order_view(row, deadlines=self.deadlines, now=now) if row else None,
                entries=[timeline_entry(m, mask=self.mask) for m in causal_order(messages)],
                dead_letters=[dead_letter_view(m, mask=self.mask) for m in letters],
            )
        )

    async def orders(self, request: web.Request) -> web.Response:
        """Orders by stage, optionally only the stuck ones, longest in their stage first."""
        _only(request, _parameters(OrdersQuery))
        limit = parse_limit(_single(request, "limit"))
        cursor_text = _single(request, "cursor")
        after = decode_cursor(cursor_text, _OrdersCursor) if cursor_text is not None else None
        chosen = OrdersFilter(
            stages=parse_stages(_single(request, "stage")),
            stuck_only=parse_flag("stuck", _single(request, "stuck")),
            limit=limit,
            after=(after.since, after.order_ref) if after is not None else None,
        )
        now = self.clock()
        rows, more = page_of(
            await self.store.orders(chosen, deadlines=self.deadlines, now=now), limit
        )
        next_cursor = (
            encode_cursor(_OrdersCursor(rows[-1].since, rows[-1].order_ref)) if more else None
        )
        return _json(
            OrdersPage(
                orders=[order_view(row, deadlines=self.deadlines, now=now) for row in rows],
                next_cursor=next_cursor,
            )
        )

    async def dead_letters(self, request: web.Request) -> web.Response:
        """Dead letters of every service, newest first."""
        _only(request, _parameters(DeadLettersQuery))
        limit = parse_limit(_single(request, "limit"))
        cursor_text = _single(request, "cursor")
        before = decode_cursor(cursor_text, _Sequence) if cursor_text is not None else None
        rows, more = page_of(
            await self.store.dead_letters(
                service=_single(request, "service"),
                order_ref=_single(request, "order_ref"),
                before_sequence=before,
                limit=limit,
            ),
            limit,
        )
        return _json(
            DeadLettersPage(
                dead_letters=[dead_letter_view(m, mask=self.mask) for m in rows],
                next_cursor=encode_cursor(rows[-1].stream_sequence) if more else None,
            )
        )
