"""Recording the spans services make, for tests that check traces.

Services trace through the global tracer provider (switched on in production
by the ``OTEL_*`` variables). :func:`recorded_spans` installs an SDK provider
with an in-memory exporter for the length of a block and removes it after,
so tests before and after run untraced. Needs ``opentelemetry-sdk`` (a
development dependency).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from opentelemetry import trace

from waybill_runtime import telemetry

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@contextlib.contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """An SDK tracer provider, global while the block runs; yields what it exported."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with global_tracer_provider(provider):
        yield exporter


@contextlib.contextmanager
def global_tracer_provider(provider: SdkTracerProvider) -> Iterator[None]:
    """``provider`` as the global tracer provider while the block runs; shut down after
    (which flushes what its processors hold)."""
    # The API allows setting the global provider once per process; a test needs
    # it for a while only, so the attribute behind it is set and reset directly.
    previous = trace._TRACER_PROVIDER
    telemetry._global_tracer.cache_clear()
    trace._TRACER_PROVIDER = provider
    try:
        yield
    finally:
        trace._TRACER_PROVIDER = previous
        telemetry._global_tracer.cache_clear()
        provider.shutdown()
