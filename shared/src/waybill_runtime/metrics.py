"""Prometheus metrics of one service instance: the standard message metrics and its own.

Each :class:`MetricsRegistry` wraps its own ``CollectorRegistry`` rather than the
process-wide default, so tests and several services in one process never
collide. Metric children are bound once per consumer / subject template and
cached, because they are touched for every message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from waybill_runtime.outcomes import Outcome

__all__ = ["CIRCUIT_STATES", "Children", "HandlerMetrics", "MetricsRegistry"]

# The states of a circuit breaker, as the label values of waybill_circuit_breaker_state.
CIRCUIT_STATES = ("closed", "open", "half_open")

# Handler durations range from a KV lookup (ms) to a slow partner's answer (s).
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

M = TypeVar("M", Counter, Gauge, Histogram)


class Children(Generic[M]):
    """The children of a labelled metric, each looked up once.

    ``labels()`` builds its key and takes the metric's lock on every call: a
    child touched per message or per webhook is kept here instead, by its
    label values. ``fixed``: the first label values, the same for every child
    (the service, say); a call gives the rest.
    """

    __slots__ = ("_children", "_fixed", "_metric")

    def __init__(self, metric: M, *fixed: str) -> None:
        self._metric: M = metric
        self._fixed = fixed
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*self._fixed, *labels)
        return child


class HandlerMetrics:
    """The metrics of one consumer handling one subject template, bound and ready."""

    __slots__ = (
        "_failed",
        "dead_lettered",
        "duration",
        "processed",
        "retried",
    )

    def __init__(self, registry: MetricsRegistry, consumer: str, subject: str) -> None:
        labels = (registry.service, consumer, subject)
        self.processed: Counter = registry._processed.labels(*labels)
        self.retried: Counter = registry._retried.labels(*labels)
        self.dead_lettered: Counter = registry._dead_lettered.labels(*labels)
        self.duration: Histogram = registry._duration.labels(*labels)
        self._failed = Children(registry._failed, *labels)

    def failed(self, error_type: str) -> Counter:
        """The failure counter for one error type (cached: types are few)."""
        return self._failed(error_type)

    def record(self, outcome: Outcome, duration_s: float, error_type: str | None = None) -> None:
        """Count one delivery's final outcome and how long its handler took."""
        self.duration.observe(duration_s)
        if outcome is Outcome.ACK:
            self.processed.inc()
            return
        self.failed(error_type or "unknown").inc()
        if outcome is Outcome.RETRY:
            self.retried.inc()
        else:
            self.dead_lettered.inc()


class MetricsRegistry:
    """The metrics of one service instance."""

    def __init__(self, service: str, *, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.collector_registry = registry if registry is not None else CollectorRegistry()
        reg = self.collector_registry
        if registry is None:
            # The process's own metrics (CPU, memory, open files, GC, Python version),
            # as the default registry would have them.
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                reg.register(collector)
        self._build_info = Gauge(
            "waybill_build_info",
            "1, labelled with the service and the version it runs.",
            ("service", "version"),
            registry=reg,
        )
        self._redelivered = Counter(
            "waybill_messages_redelivered_total",
            "Deliveries of a message that had been delivered before (a retry or a lost ack).",
            ("service", "consumer"),
            registry=reg,
        )
        self._circuit_state = Gauge(
            "waybill_circuit_breaker_state",
            "1 for the state each circuit breaker is in (closed, open, half_open), else 0.",
            ("service", "breaker", "state"),
            registry=reg,
        )
        handler_labels = ("service", "consumer", "subject")
        self._processed = Counter(
            "waybill_messages_processed_total",
            "Messages whose handler succeeded (acknowledged).",
            handler_labels,
            registry=reg,
        )
        self._failed = Counter(
            "waybill_messages_failed_total",
            "Deliveries whose handler failed, by error type.",
            (*handler_labels, "error_type"),
            registry=reg,
        )
        self._retried = Counter(
            "waybill_messages_retried_total",
            "Deliveries handed back for a later retry.",
            handler_labels,
            registry=reg,
        )
        self._dead_lettered = Counter(
            "waybill_messages_dead_lettered_total",
            "Messages moved to the dead letter stream (invalid, permanent error or retries out).",
            handler_labels,
            registry=reg,
        )
        self._duration = Histogram(
            "waybill_handler_duration_seconds",
            "Time a handler took for one delivery.",
            handler_labels,
            buckets=DURATION_BUCKETS_S,
            registry=reg,
        )
        self._pending = Gauge(
            "waybill_consumer_pending_messages",
            "Messages waiting for a consumer (consumer lag).",
            ("service", "consumer"),
            registry=reg,
        )
        self._published = Counter(
            "waybill_messages_published_total",
            "Messages published, by subject template.",
            ("service", "subject"),
            registry=reg,
        )
        self._token_expiry = Gauge(
            "waybill_api_token_expiry_timestamp_seconds",
            "When the newest API token a caller presented expires (Unix time), by subject: "
            "a caller whose newest token is about to expire is about to be locked out.",
            ("service", "subject"),
            registry=reg,
        )
        self._token_expiries: dict[str, float] = {}
        self._partner_calls = Histogram(
            "waybill_partner_call_duration_seconds",
            "Time a call to a partner took, "
            "by operation and outcome (ok, client_error, server_error, timeout, network_error).",
            ("service", "partner", "operation", "outcome"),
            buckets=DURATION_BUCKETS_S,
            registry=reg,
        )
        self._partner_children = Children(self._partner_calls, service)
        self._handlers: dict[tuple[str, str], HandlerMetrics] = {}
        self._pending_children = Children(self._pending, service)
        self._redelivered_children = Children(self._redelivered, service)
        self._published_children = Children(self._published, service)
        self._own: dict[str, Counter | Gauge | Histogram] = {}

    def handler(self, consumer: str, subject: str) -> HandlerMetrics:
        """Metrics for ``consumer`` handling ``subject`` (a subject template, not a subject)."""
        key = (consumer, subject)
        metrics = self._handlers.get(key)
        if metrics is None:
            metrics = self._handlers[key] = HandlerMetrics(self, consumer, subject)
        return metrics

    def consumer_lag(self, consumer: str) -> Gauge:
        """The pending-messages gauge of ``consumer``; set from each delivery's ack subject."""
        return self._pending_children(consumer)

    def build_info(self, version: str) -> None:
        """Record the version this instance runs (``waybill_build_info``)."""
        self._build_info.labels(self.service, version).set(1)

    def api_token_seen(self, subject: str, expires_at_s: float) -> None:
        """Note an accepted API token of ``subject``; the gauge keeps the latest expiry."""
        if expires_at_s > self._token_expiries.get(subject, 0.0):
            self._token_expiries[subject] = expires_at_s
            self._token_expiry.labels(self.service, subject).set(expires_at_s)

    def redelivered(self, consumer: str) -> Counter:
        """The redeliveries counter of ``consumer``."""
        return self._redelivered_children(consumer)

    def circuit_state(self, breaker: str, state: str) -> None:
        """Show ``breaker`` in ``state`` (one of :data:`CIRCUIT_STATES`); call it at start
        with ``closed`` so the breaker has its series before its first change."""
        for known in CIRCUIT_STATES:
            self._circuit_state.labels(self.service, breaker, known).set(1 if known == state else 0)

    def partner_call(self, partner: str, operation: str, outcome: str) -> Histogram:
        """The duration histogram of one partner operation with one outcome."""
        return self._partner_children(partner, operation, outcome)

    def published(self, subject: str) -> Counter:
        """The published-messages counter of a subject template."""
        return self._published_children(subject)

    def _existing(self, kind: type[M], name: str) -> M | None:
        existing = self._own.get(name)
        if existing is None:
            return None
        if not isinstance(existing, kind):
            raise ValueError(
                f"metric {name} already exists as a {type(existing).__name__.lower()}: "
                "pick another name"
            )
        return existing

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
        """A service's own counter (the same object when asked twice)."""
        existing = self._existing(Counter, name)
        if existing is not None:
            return existing
        metric = Counter(name, documentation, labelnames, registry=self.collector_registry)
        self._own[name] = metric
        return metric

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        """A service's own gauge (the same object when asked twice)."""
        existing = self._existing(Gauge, name)
        if existing is not None:
            return existing
        metric = Gauge(name, documentation, labelnames, registry=self.collector_registry)
        self._own[name] = metric
        return metric

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DURATION_BUCKETS_S,
    ) -> Histogram:
        """A service's own histogram (the same object when asked twice)."""
        existing = self._existing(Histogram, name)
        if existing is not None:
            return existing
        metric = Histogram(
            name, documentation, labelnames, buckets=buckets, registry=self.collector_registry
        )
        self._own[name] = metric
        return metric

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.collector_registry), CONTENT_TYPE_LATEST
