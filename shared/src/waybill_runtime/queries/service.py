"""A Waybill service's queries as an ADR-32 NATS micro service.

Written on plain nats-py subscriptions rather than on `nats.micro` because that
one runs an endpoint's requests one at a time and sends an unexpected
exception's repr back to the caller; here each request is its own task
(bounded by ``max_concurrency``) and failures are logged, never sent.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from waybill_runtime.errors import UserFacingError
from waybill_runtime.queries.discovery import (
    DISCOVERY_PREFIX,
    DISCOVERY_VERBS,
    DiscoveryVerb,
    InfoResponse,
    PingResponse,
    StatsResponse,
    discovery_subjects,
)
from waybill_runtime.queries.endpoint import QueryEndpoint, Req, Resp
from waybill_runtime.queries.errors import UNAVAILABLE, error_headers

logger = logging.getLogger(__name__)

# ADR-32: every endpoint joins queue group "q", so replicas of a service share
# the requests and scaling out is starting another replica.
QUEUE_GROUP = "q"

_NAME = re.compile(r"[A-Za-z0-9_-]+")
# The semantic versioning 2.0.0 grammar (semver.org), which ADR-32 asks for.
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_SUBJECT_TOKEN = re.compile(r"[^\s.*>]+|\*")


class QueryService:
    """Answers a service's queries and the ADR-32 `$SRV.PING/INFO/STATS` requests.

    Register endpoints with :meth:`endpoint`, then :meth:`start`; :meth:`stop`
    stops taking requests and waits for those in flight.
    """

    def __init__(
        self,
        nc: Client,
        *,
        name: str,
        version: str,
        description: str = "",
        metadata: dict[str, str] | None = None,
        max_concurrency: int = 64,
    ) -> None:
        if not _NAME.fullmatch(name):
            raise UserFacingError(
                f"query service name {name!r} is not valid: use only letters, digits, '-' and '_'"
            )
        if not _SEMVER.fullmatch(version):
            raise UserFacingError(
                f"query service {name} version {version!r} is not semantic: "
                "use MAJOR.MINOR.PATCH, e.g. 1.4.0"
            )
        if max_concurrency < 1:
            raise UserFacingError(
                f"query service {name} max_concurrency is {max_concurrency}: use 1 or more"
            )
        self.name = name
        self.version = version
        self.description = description
        self.metadata = _checked_metadata(f"query service {name}", metadata)
        self.id = uuid.uuid4().hex
        self._nc = nc
        self._endpoints: list[QueryEndpoint[Any, Any]] = []
        self._capacity = asyncio.Semaphore(max_concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._endpoint_subs: list[Subscription] = []
        self._discovery_subs: list[Subscription] = []
        self._started: datetime | None = None
        self._stopped = False

    def endpoint(
        self,
        name: str,
        subject: str,
        request_type: type[Req],
        response_type: type[Resp],
        handler: Callable[[Req], Awaitable[Resp]],
        *,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Answer requests on ``subject`` with ``handler``; call before :meth:`start`.

        The request body is decoded as ``request_type`` (a bad one gets a 400
        reply naming the field); the handler's ``response_type`` answer is sent
        as JSON. Raise :class:`QueryError` in the handler for a deliberate error
        reply; any other exception becomes a 500 "internal error" reply.
        """
        where = f"query endpoint {name!r} of {self.name}"
        if self._started is not None:
            raise UserFacingError(f"{where} added after start(): register endpoints first")
        if not _NAME.fullmatch(name):
            raise UserFacingError(f"{where} has a bad name: use only letters, digits, '-', '_'")
        if not _is_subject(subject) or subject.split(".")[0] == DISCOVERY_PREFIX:
            raise UserFacingError(
                f"{where} has subject {subject!r}, which is not a NATS subject a query may use: "
                "take it from SubjectMap.query_subject"
            )
        for kind, given in (("request", request_type), ("response", response_type)):
            if not (isinstance(given, type) and issubclass(given, msgspec.Struct)):
                raise UserFacingError(f"{where} {kind} type must be a msgspec Struct class")
        for existing in self._endpoints:
            if name == existing.name or subject == existing.subject:
                raise UserFacingError(
                    f"{where} on {subject} clashes with endpoint {existing.name!r} on "
                    f"{existing.subject}: give each endpoint its own name and subject"
                )
        self._endpoints.append(
            QueryEndpoint(
                name=name,
                subject=subject,
                queue_group=QUEUE_GROUP,
                request_type=request_type,
                response_type=response_type,
                handler=handler,
                metadata=_checked_metadata(where, metadata),
            )
        )

    async def start(self) -> None:
        """Subscribe the endpoints and the discovery subjects."""
        if self._started is not None:
            raise UserFacingError(f"query service {self.name} started twice: call start() once")
        self._started = datetime.now(UTC)
        try:
            for verb in DISCOVERY_VERBS:
                reply = self._discovery_reply(verb)
                for subject in discovery_subjects(verb, self.name, self.id):
                    # No queue group: discovery asks every instance to answer.
                    self._discovery_subs.append(await self._nc.subscribe(subject, cb=reply))
            for endpoint in self._endpoints:
                sub = await self._nc.subscribe(
                    endpoint.subject, queue=endpoint.queue_group, cb=self._dispatcher(endpoint)
                )
                self._endpoint_subs.append(sub)
            # Without a round trip a request sent right after start() could reach
            # the server before the subscriptions and find no responders. nats-py
            # writes the flush PING straight to the socket, possibly ahead of
            # SUBs still in its write buffer: the second PING follows them.
            await self._nc.flush()
            await self._nc.flush()
        except NatsError as failed:
            await self._unsubscribe(self._endpoint_subs + self._discovery_subs)
            raise UserFacingError(
                f"query service {self.name} could not subscribe ({failed!r}): "
                "check the NATS connection and permissions"
            ) from failed

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Stop taking requests; wait up to ``drain_timeout`` seconds for those in flight.

        Requests still running at the deadline are cancelled and answered with a
        503 so callers retry instead of waiting. Discovery answers until the end,
        so the instance stays visible while it drains. Calling it again is a no-op.
        """
        if self._started is None or self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        for sub in self._endpoint_subs:
            # drain() rather than unsubscribe(): requests the server already
            # sent are still answered instead of silently dropped.
            drain: Callable[[], Awaitable[None]] = sub.drain  # nats-py leaves it untyped
            try:
                await asyncio.wait_for(drain(), max(deadline - loop.time(), 0.001))
            except (NatsError, TimeoutError) as failed:
                logger.warning(
                    "query service %s could not drain a subscription: %r", self.name, failed
                )
        if self._in_flight:
            _, late = await asyncio.wait(
                set(self._in_flight), timeout=max(deadline - loop.time(), 0.0)
            )
            for task in late:
                task.cancel()
            if late:
                logger.warning(
                    "query service %s cancelled %d requests still running at its stop deadline",
                    self.name,
                    len(late),
                )
                await asyncio.gather(*late, return_exceptions=True)
        await self._unsubscribe(self._discovery_subs)

    def ping(self) -> PingResponse:
        """This instance's `$SRV.PING` reply."""
        return PingResponse(
            name=self.name, id=self.id, version=self.version, metadata=dict(self.metadata)
        )

    def info(self) -> InfoResponse:
        """This instance's `$SRV.INFO` reply."""
        return InfoResponse(
            name=self.name,
            id=self.id,
            version=self.version,
            metadata=dict(self.metadata),
            description=self.description,
            endpoints=[endpoint.info() for endpoint in self._endpoints],
        )

    def stats(self) -> StatsResponse:
        """This instance's `$SRV.STATS` reply: counters of every endpoint."""
        return StatsResponse(
            name=self.name,
            id=self.id,
            version=self.version,
            metadata=dict(self.metadata),
            started=self._started or datetime.now(UTC),
            endpoints=[endpoint.stats() for endpoint in self._endpoints],
        )

    def _discovery_reply(self, verb: DiscoveryVerb) -> Callable[[Msg], Awaitable[None]]:
        describe: Callable[[], msgspec.Struct] = {
            "PING": self.ping,
            "INFO": self.info,
            "STATS": self.stats,
        }[verb]

        async def reply(msg: Msg) -> None:
            if not msg.reply:
                return
            try:
                await self._nc.publish(msg.reply, msgspec.json.encode(describe()))
            except NatsError as lost:
                logger.warning("query service %s could not answer %s: %r", self.name, verb, lost)

        return reply

    def _dispatcher(self, endpoint: QueryEndpoint[Any, Any]) -> Callable[[Msg], Awaitable[None]]:
        async def dispatch(msg: Msg) -> None:
            # nats-py awaits this callback before reading the subscription's
            # next message, so it only starts a task; waiting here for a free
            # slot is the backpressure when max_concurrency requests are running.
            if not await self._take_slot():
                await self._refuse_while_stopping(msg)
                return
            task = asyncio.create_task(endpoint.answer(self._nc, msg))
            self._in_flight.add(task)
            task.add_done_callback(self._release_slot)

        return dispatch

    async def _take_slot(self) -> bool:
        """Hold a concurrency slot; False if the service began stopping while full."""
        if not self._capacity.locked():
            await self._capacity.acquire()  # a slot is free: returns at once
            return True
        if self._stopping.is_set():
            return False
        acquiring = asyncio.ensure_future(self._capacity.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if acquiring.done():
            return True
        acquiring.cancel()
        await asyncio.wait({acquiring})
        # The slot may have come free just as stop() began: then use it.
        return not acquiring.cancelled()

    def _release_slot(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._capacity.release()

    async def _refuse_while_stopping(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            await self._nc.publish(
                msg.reply, b"", headers=error_headers(UNAVAILABLE, "service stopping: retry")
            )
        except NatsError as lost:
            logger.warning("query service %s could not refuse a request: %r", self.name, lost)

    async def _unsubscribe(self, subs: list[Subscription]) -> None:
        for sub in subs:
            try:
                await sub.unsubscribe()
            except NatsError as failed:
                # A closed or draining connection has already let go of it.
                logger.debug("query service %s unsubscribe: %r", self.name, failed)
        subs.clear()


def _is_subject(subject: str) -> bool:
    tokens = subject.split(".")
    return all(_SUBJECT_TOKEN.fullmatch(token) for token in tokens[:-1]) and (
        tokens[-1] == ">" or bool(_SUBJECT_TOKEN.fullmatch(tokens[-1]))
    )


def _checked_metadata(where: str, metadata: dict[str, str] | None) -> dict[str, str]:
    # ADR-32 metadata is string to string and immutable: copy it so a caller
    # changing its dict later does not change what discovery reports.
    checked = dict(metadata or {})
    for key, value in checked.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UserFacingError(f"{where} metadata {key!r}: keys and values must be strings")
    return checked
