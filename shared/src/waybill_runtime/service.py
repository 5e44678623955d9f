"""A Waybill service: its handlers, queries and hooks, and the lifecycle that runs them.

A service module builds one :class:`Service`, registers handlers with
``@service.handles(MessageType)`` and queries with ``@service.query(...)``,
and exposes ``main = service.main`` for the ``waybill.services`` entry point.
Everything else (connection, provisioning, consuming, dead letters, queries,
HTTP, telemetry, graceful shutdown) is the same for every service and lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, packages_distributions
from importlib.metadata import version as package_version
from typing import Any, Generic, TypeVar, overload

from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from waybill_contracts import Lane, Message, MessageKind, SubjectMap
from waybill_contracts.events import PartnerCircuitChanged
from waybill_runtime.bus.advisories import recording_unsettled
from waybill_runtime.bus.bucket import KvBucket
from waybill_runtime.bus.connection import (
    ConnectionEvents,
    StoppedBeforeConnected,
    connect,
    tls_context,
)
from waybill_runtime.bus.consumer import Consumer, ConsumerOptions, Handler, HandlerContext
from waybill_runtime.bus.dead_letter_consumer import DeadLetterConsumer
from waybill_runtime.bus.dead_letters import StoredDeadLetter
from waybill_runtime.bus.provisioning import (
    bind_service,
    consumer_policy,
    provision_service,
    stream_policy,
)
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.circuit_news import CircuitNews, bind_circuit_news, instance_name
from waybill_runtime.collector import freeze_startup_objects, tune_collector
from waybill_runtime.declaration import (
    Bucket,
    Declaration,
    Partner,
    Route,
    check_routes,
    publishable_types,
)
from waybill_runtime.declaration import describe as describe_service
from waybill_runtime.errors import UserFacingError
from waybill_runtime.http import (
    CheckResult,
    ReadinessCheck,
    api_access,
    create_http_app,
    serve_http,
)
from waybill_runtime.http.openapi import openapi_document
from waybill_runtime.idempotency import OnceOnly
from waybill_runtime.logs import configure_logging
from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.order_traces import OrderTraces
from waybill_runtime.partner_calls import bind_partner_metrics
from waybill_runtime.queries import QueryService
from waybill_runtime.security.fact_ids import fact_id_key
from waybill_runtime.security.permissions import inbox_prefix
from waybill_runtime.settings import RuntimeSettings, load_settings, refuse_known_secrets
from waybill_runtime.telemetry import configure_telemetry, tracing_active

log = logging.getLogger("waybill.service")

M = TypeVar("M", bound=Message)
S = TypeVar("S", bound=RuntimeSettings)
Req = TypeVar("Req")
Resp = TypeVar("Resp")
T = TypeVar("T")

_STREAM_OF_KIND = {MessageKind.EVENT: "events", MessageKind.COMMAND: "commands"}


@dataclass(frozen=True)
class ResourceKey(Generic[T]):
    """Names a resource of a running service, typed (like aiohttp's ``AppKey``).

    Declared once at module level next to the resource's factory; handlers
    reach the resource with ``ctx.resource(KEY)`` and get a ``T``.
    """

    name: str


@dataclass
class Runtime(Generic[S]):
    """What a running service's hooks and handlers can use."""

    settings: S
    subjects: SubjectMap
    nc: NatsClient
    js: JetStreamContext
    publisher: Publisher
    metrics: MetricsRegistry
    buckets: dict[str, KeyValue] = field(default_factory=dict)
    _once: dict[type[Any], OnceOnly[Any]] = field(default_factory=dict)
    _resources: dict[ResourceKey[Any], Any] = field(default_factory=dict)

    def resource(self, key: ResourceKey[T]) -> T:
        """The resource opened under ``key``; a clear error if the service declares none."""
        try:
            value: T = self._resources[key]
        except KeyError:
            raise LookupError(
                f"no resource {key.name!r}: declare it with @service.resource({key.name!r} key)"
            ) from None
        return value

    def once_only(self, result_type: type[Resp]) -> OnceOnly[Resp]:
        """The effects-once helper for results of ``result_type`` (one per type, reused)."""
        once = self._once.get(result_type)
        if once is None:
            once = self._once[result_type] = OnceOnly(self.buckets["idempotency"], result_type)
        return once


# A query or dead-letter handler: called with what it handles and the running service
# (parameters: what it handles, the settings type, what it returns).
RuntimeHandler = Callable[[Req, Runtime[S]], Awaitable[Resp]]
# What opens a resource of a running service and closes it after the drain.
ResourceFactory = Callable[[Runtime[S]], contextlib.AbstractAsyncContextManager[T]]


def _package_version(module: str) -> str:
    """The version of the distribution that ships ``module`` (0.0.0 when not installed)."""
    top = module.split(".", 1)[0]
    for distribution in packages_distributions().get(top, ()):
        with contextlib.suppress(PackageNotFoundError):
            return package_version(distribution)
    return "0.0.0"


class Service(Generic[S]):
    """The declaration of one service (:mod:`waybill_runtime.declaration`); :meth:`main` runs it.

    The messages it handles come from its handlers; the events it may publish
    and the commands it may send from the contracts; the rest is declared here.
    """

    @overload
    def __init__(
        self: Service[RuntimeSettings],
        name: str,
        *,
        description: str = "",
        version: str | None = None,
        buckets: Sequence[Bucket] = (),
        partners: Sequence[Partner] = (),
        routes: Sequence[Route] = (),
        local_settings: Mapping[str, str] | None = None,
        new_events_only: bool = False,
        watches_mesh: bool = False,
        replays_dead_letters: bool = False,
    ) -> None: ...

    @overload
    def __init__(
        self,
        name: str,
        *,
        settings_type: type[S],
        description: str = "",
        version: str | None = None,
        buckets: Sequence[Bucket] = (),
        partners: Sequence[Partner] = (),
        routes: Sequence[Route] = (),
        local_settings: Mapping[str, str] | None = None,
        new_events_only: bool = False,
        watches_mesh: bool = False,
        replays_dead_letters: bool = False,
    ) -> None: ...

    def __init__(
        self,
        name: str,
        *,
        settings_type: type[S] = RuntimeSettings,  # type: ignore[assignment]
        description: str = "",
        version: str | None = None,
        buckets: Sequence[Bucket] = (),
        partners: Sequence[Partner] = (),
        routes: Sequence[Route] = (),
        local_settings: Mapping[str, str] | None = None,
        new_events_only: bool = False,
        watches_mesh: bool = False,
        replays_dead_letters: bool = False,
    ) -> None:
        self.name = name
        self.settings_type = settings_type
        self.description = description
        self.version = version or _package_version(settings_type.__module__)
        # Every service keeps its effects' keys; a declared bucket of that purpose wins.
        declared = {b.purpose: b for b in buckets}
        self.buckets: tuple[Bucket, ...] = (
            declared.pop("idempotency", Bucket("idempotency")),
            *declared.values(),
        )
        self.partners = tuple(partners)
        self.declared_routes = tuple(routes)
        # Settings for a local run only (`waybill up`, the test mesh): faster polls.
        self.local_settings = dict(local_settings or {})
        # A service whose effects only make sense now (messages to customers) must
        # not work through the events stream's history when first deployed.
        self.new_events_only = new_events_only
        # The mesh's watcher (the audit trail): its durables read the whole streams,
        # so a message on a subject outside the contracts reaches it (handled by its
        # type, or dead-lettered if it does not decode) instead of lying unread; and
        # it turns JetStream's advisories about messages no handler settled into
        # dead letters, so nothing leaves a stream unrecorded.
        self.watches_mesh = watches_mesh
        # It puts dead letters back on their original subjects when an operator asks
        # (the control tower's replay): it may publish any event or command, read a
        # letter and its original, and delete the letter, as `waybill dlq replay` may.
        self.replays_dead_letters = replays_dead_letters
        self.publishes, self.sends = publishable_types(name)
        self.handlers: dict[type[Message], Handler[S]] = {}
        self.dead_letter_handler: RuntimeHandler[StoredDeadLetter, S, None] | None = None
        self._queries: list[tuple[str, type[Any], type[Any], RuntimeHandler[Any, S, Any]]] = []
        self._resources: list[tuple[ResourceKey[Any], ResourceFactory[S, Any]]] = []
        self._contexts: list[ResourceFactory[S, None]] = []
        self._readiness: list[Callable[[Runtime[S]], ReadinessCheck]] = []
        self._routes: list[Callable[[Runtime[S]], Sequence[web.RouteDef]]] = []

    # -- declaration ------------------------------------------------------------

    def handles(
        self, message_type: type[M]
    ) -> Callable[
        [Callable[[M, HandlerContext[S]], Awaitable[None]]],
        Callable[[M, HandlerContext[S]], Awaitable[None]],
    ]:
        """Register the handler of ``message_type`` (an event or a command).

        The handler is called with the message and a :class:`HandlerContext` of
        this service's settings type; mypy refuses a handler typed otherwise.
        """

        def register(
            handler: Callable[[M, HandlerContext[S]], Awaitable[None]],
        ) -> Callable[[M, HandlerContext[S]], Awaitable[None]]:
            if message_type in self.handlers:
                raise ValueError(f"{self.name} already handles {message_type.__name__}")
            if message_type.kind not in _STREAM_OF_KIND:
                raise ValueError(f"{message_type.__name__} is not an event or a command")
            self.handlers[message_type] = handler
            return handler

        return register

    def handles_dead_letters(
        self, handler: RuntimeHandler[StoredDeadLetter, S, None]
    ) -> RuntimeHandler[StoredDeadLetter, S, None]:
        """Register the handler of every dead letter (of every service): the auditor's view.

        It is called with the stored letter and the running service's :class:`Runtime`.
        """
        if self.dead_letter_handler is not None:
            raise ValueError(f"{self.name} already handles dead letters")
        self.dead_letter_handler = handler
        return handler

    def query(
        self, name: str, request_type: type[Req], response_type: type[Resp]
    ) -> Callable[[RuntimeHandler[Req, S, Resp]], RuntimeHandler[Req, S, Resp]]:
        """Register a query endpoint answered on ``subjects.query_subject(service, name)``.

        The handler is called with the decoded request and the running
        service's :class:`Runtime`, and returns the response.
        """

        def register(handler: RuntimeHandler[Req, S, Resp]) -> RuntimeHandler[Req, S, Resp]:
            self._queries.append((name, request_type, response_type, handler))
            return handler

        return register

    def resource(
        self, key: ResourceKey[T]
    ) -> Callable[[ResourceFactory[S, T]], ResourceFactory[S, T]]:
        """Register the factory of the resource ``key`` (a partner client, a store).

        The factory is an async context manager taking the :class:`Runtime`: it
        is entered once per running service after provisioning and before any
        message is consumed, in declaration order (a later factory may use an
        earlier resource), and left after consumers have drained, in reverse.
        Handlers reach what it yields with ``ctx.resource(key)``.
        """

        def register(factory: ResourceFactory[S, T]) -> ResourceFactory[S, T]:
            if any(known == key for known, _ in self._resources):
                raise ValueError(f"{self.name} already has a resource {key.name!r}")
            self._resources.append((key, factory))
            return factory

        return register

    def runs(self, work: ResourceFactory[S, None]) -> ResourceFactory[S, None]:
        """Register background work (a poll, a sweep) that runs while the service does.

        Like a resource's factory, it is entered after the resources (so it
        can use them) and left after consumers have drained; it yields nothing.
        """
        self._contexts.append(work)
        return work

    def readiness(self, factory: Callable[[Runtime[S]], ReadinessCheck]) -> None:
        """Add a readiness check of the service's own dependency (e.g. a partner reachable)."""
        self._readiness.append(factory)

    def routes(self, factory: Callable[[Runtime[S]], Sequence[web.RouteDef]]) -> None:
        """Add HTTP routes (webhooks, APIs); each must be one of the declared ``routes``."""
        self._routes.append(factory)

    # -- what it is -----------------------------------------------------------------

    def types_by_stream(self) -> dict[str, list[type[Message]]]:
        """The handled message types by the stream they are read from (events, commands)."""
        grouped: dict[str, list[type[Message]]] = {}
        for message_type in self.handlers:
            grouped.setdefault(_STREAM_OF_KIND[message_type.kind], []).append(message_type)
        return grouped

    def lanes(self) -> tuple[Lane, ...]:
        """The lanes the service reads, each with a durable per stream of its own.

        Every lane (see :mod:`waybill_contracts.lanes`), unless the service
        watches the whole mesh: its durables' stream-wide filters take both
        lanes already, and a watcher has no customer waiting on it.
        """
        return (Lane.STANDARD,) if self.watches_mesh else tuple(Lane)

    def query_names(self) -> list[str]:
        return [name for name, *_ in self._queries]

    def describe(self, *, subject_prefix: str = "waybill") -> Declaration:
        """This service's :class:`~waybill_runtime.declaration.Declaration`."""
        return describe_service(self, subject_prefix=subject_prefix)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of this service's HTTP API (served at ``/openapi.json``)."""
        return openapi_document(
            service=self.name,
            version=self.version,
            description=self.description,
            routes=self.declared_routes,
        )

    # -- running ---------------------------------------------------------------

    def main(self) -> int:
        """Entry point of `waybill run <service>`: settings from the environment, signals."""
        settings = load_settings(self.settings_type, service=self.name)
        configure_logging(settings.service, settings.log_level, secrets=settings.secret_values())
        configure_telemetry(settings.service, version=self.version)
        try:
            import uvloop

            runner: Callable[[Awaitable[None]], None] = uvloop.run  # type: ignore[assignment]
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            runner = asyncio.run  # type: ignore[assignment]

        async def until_signalled() -> None:
            stop, started = asyncio.Event(), asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            freezing = asyncio.create_task(_freeze_once(started), name="gc freeze")
            try:
                await self.serve(settings, stop, ready=started)
            finally:
                freezing.cancel()

        tune_collector()
        runner(until_signalled())
        return 0

    async def serve(
        self, settings: S, stop: asyncio.Event, *, ready: asyncio.Event | None = None
    ) -> None:
        """Run until ``stop`` is set, then shut down gracefully. Tests call this directly."""
        refuse_known_secrets(settings)
        # Who may call its API is settled first: a protected route without a key
        # source, or a key source that cannot be read, stops the service here.
        access = api_access(settings, self.declared_routes)
        subjects = SubjectMap(settings.subject_prefix)
        metrics = MetricsRegistry(settings.service)
        metrics.build_info(self.version)
        # Partner sessions made from here on count their calls in this registry.
        bind_partner_metrics(metrics)
        events = ConnectionEvents(settings.nats_url)
        fact_key = fact_id_key(settings)  # before connecting: a bad identity file says so first
        tls = tls_context(settings)
        try:
            nc = await connect(
                settings.nats_url,
                name=settings.service,
                credentials_file=settings.nats_credentials_file,
                nkey_seed_file=settings.nats_nkey_seed_file,
                inbox_prefix=inbox_prefix(settings.service),
                tls=tls,
                events=events,
                stopping=stop,
            )
        except StoppedBeforeConnected as stopped:
            log.info("%s", stopped)
            return
        async with AsyncExitStack() as stack:
            stack.push_async_callback(_drain, nc, events)
            stack.push_async_callback(access.aclose)
            js = nc.jetstream()
            # The contracts say what this service may put on the bus; anything else
            # is refused before it is sent (and, with identities on, by NATS too).
            publisher = Publisher(
                nc,
                subjects,
                service=settings.service,
                metrics=metrics,
                may_publish=self.publishes | self.sends,
                fact_key=fact_key,
            )
            runtime = Runtime(
                settings=settings,
                subjects=subjects,
                nc=nc,
                js=js,
                publisher=publisher,
                metrics=metrics,
            )
            # Breakers watched from here on (built by the resources) announce their
            # transitions, when the contracts let this service publish the news.
            news: CircuitNews | None = None
            if PartnerCircuitChanged in self.publishes:
                news = CircuitNews(publisher, service=settings.service, instance=instance_name())
                await stack.enter_async_context(news.running())
            bind_circuit_news(news)
            await self._provision(runtime)
            for key, factory in self._resources:
                runtime._resources[key] = await stack.enter_async_context(factory(runtime))
            for work in self._contexts:
                await stack.enter_async_context(work(runtime))
            if self.watches_mesh:
                await stack.enter_async_context(recording_unsettled(runtime))
            consumers = self._consumers(runtime)
            routes = [route for factory in self._routes for route in factory(runtime)]
            check_routes(self.name, self.declared_routes, routes)
            http_app = create_http_app(
                service=settings.service,
                registry=metrics,
                readiness=[
                    _NatsConnected(nc),
                    _ConsumersBound(consumers),
                    *(factory(runtime) for factory in self._readiness),
                ],
                max_body_bytes=settings.http_max_body_bytes,
                routes=routes,
                openapi=self.openapi(),
                access=access,
            )
            # HTTP first: a taken port stops the service before it takes any
            # message, and health answers while consumers come up.
            bound = await stack.enter_async_context(
                serve_http(http_app, settings.http_host, settings.http_port)
            )
            for consumer in consumers:
                consumer.start()
            queries = await self._start_queries(runtime)
            stack.push_async_callback(queries.stop, drain_timeout=settings.shutdown_deadline_s)
            # Runs first when the stack unwinds, also on an error: stop pulling,
            # let in-flight handlers finish within the deadline.
            stack.push_async_callback(_stop_consumers, consumers, settings.shutdown_deadline_s)
            log.info(
                "%s %s started: http %s, consuming %d message types",
                settings.service,
                settings.version,
                bound.url,
                len(self.handlers),
            )
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info(
                "stopping: finishing in-flight work (deadline %.0f s)",
                settings.shutdown_deadline_s,
            )

    async def _provision(self, runtime: Runtime[S]) -> None:
        settings, js, subjects = runtime.settings, runtime.js, runtime.subjects
        declaration = self.describe(subject_prefix=settings.subject_prefix)
        tracing = tracing_active()
        if settings.provision == "auto":
            try:
                buckets = await provision_service(
                    js,
                    declaration,
                    subjects,
                    streams=stream_policy(settings),
                    consumers=consumer_policy(settings),
                    tracing=tracing,
                )
            except NatsTimeoutError:
                # What a refused JetStream API request looks like to nats-py.
                raise UserFacingError(
                    "JetStream did not answer the provisioning requests (an identity without "
                    "stream-admin rights is refused them): set WAYBILL_PROVISION=never and run "
                    "`waybill provision` as the admin, or check that JetStream is enabled"
                ) from None
        else:
            # Provisioned beforehand (`waybill provision`): this identity may only bind.
            buckets = await bind_service(js, declaration, subjects, tracing=tracing)
        for purpose, kv in buckets.items():
            # Writes and reads through the publisher's replies (waybill_runtime.bus.bucket).
            runtime.buckets.setdefault(
                purpose, KvBucket(kv, runtime.publisher.acks, timeout_s=js._timeout)
            )
        if "traces" in runtime.buckets:
            runtime.publisher.order_traces = OrderTraces(runtime.buckets["traces"])

    def _consumers(self, runtime: Runtime[S]) -> list[Consumer]:
        settings, subjects = runtime.settings, runtime.subjects
        options = ConsumerOptions(
            concurrency=settings.consumer_concurrency,
            fetch_batch=settings.fetch_batch,
            fetch_timeout_s=settings.fetch_wait_s,
            gather_s=settings.fetch_gather_s,
            max_deliver=settings.max_deliver,
            retry_backoff_s=tuple(settings.retry_backoff_s),
        )
        consumers = [
            Consumer(
                nc=runtime.nc,
                js=runtime.js,
                subjects=subjects,
                service=settings.service,
                stream=getattr(subjects, f"{stream_key}_stream").name,
                durable=subjects.durable(settings.service, stream_key, lane),
                handlers={t: self.handlers[t] for t in types},
                publisher=runtime.publisher,
                options=options,
                metrics=runtime.metrics,
                runtime=runtime,
            )
            for stream_key, types in self.types_by_stream().items()
            for lane in self.lanes()
        ]
        if self.dead_letter_handler is not None:
            consumers.append(
                DeadLetterConsumer(
                    nc=runtime.nc,
                    js=runtime.js,
                    subjects=subjects,
                    service=settings.service,
                    stream=subjects.dlq_stream.name,
                    durable=subjects.durable(settings.service, "dead-letters"),
                    handlers={},
                    publisher=runtime.publisher,
                    options=options,
                    metrics=runtime.metrics,
                    runtime=runtime,
                    letter_handler=_bound_to(self.dead_letter_handler, runtime),
                )
            )
        return consumers

    async def _start_queries(self, runtime: Runtime[S]) -> QueryService:
        settings = runtime.settings
        queries = QueryService(
            runtime.nc,
            name=runtime.subjects.query_service_name(settings.service),
            version=settings.version,
            description=self.description,
            metadata={"service": settings.service, "subject_prefix": runtime.subjects.prefix},
        )
        for name, request_type, response_type, handler in self._queries:
            queries.endpoint(
                name,
                runtime.subjects.query_subject(settings.service, name),
                request_type,
                response_type,
                _bound_to(handler, runtime),
            )
        await queries.start()
        return queries


def _bound_to(
    handler: RuntimeHandler[Req, S, Resp], runtime: Runtime[S]
) -> Callable[[Req], Awaitable[Resp]]:
    async def call(argument: Req) -> Resp:
        return await handler(argument, runtime)

    return call


async def _stop_consumers(consumers: list[Consumer], deadline_s: float) -> None:
    cut_off = sum(await asyncio.gather(*(c.stop(deadline_s) for c in consumers)))
    if cut_off:
        log.warning("%d message(s) were still running at the deadline; redelivered", cut_off)


async def _freeze_once(started: asyncio.Event) -> None:
    """Once the service has started, keep its start-up objects out of the collector's walks."""
    await started.wait()
    freeze_startup_objects()


async def _drain(nc: NatsClient, events: ConnectionEvents) -> None:
    events.closing = True
    with contextlib.suppress(Exception):
        await nc.drain()


@dataclass
class _NatsConnected:
    nc: NatsClient
    name: str = "nats"

    async def check(self) -> CheckResult:
        connected = self.nc.is_connected
        return CheckResult(ok=connected, detail="connected" if connected else "not connected")


@dataclass
class _ConsumersBound:
    consumers: list[Consumer]
    name: str = "consumers"

    async def check(self) -> CheckResult:
        unbound = [c.durable for c in self.consumers if not c.bound]
        return CheckResult(
            ok=not unbound,
            detail="all bound" if not unbound else f"not bound: {', '.join(unbound)}",
        )
