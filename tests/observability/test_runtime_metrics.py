"""The runtime's own metrics: build info, the process, circuit breakers from the start."""

from __future__ import annotations

from waybill_runtime.metrics import MetricsRegistry
from waybill_runtime.partner_calls import bind_partner_metrics, watch_circuits
from waybill_runtime.resilience import CircuitBreaker
from waybill_runtime.telemetry import get_tracer
from waybill_runtime.testing.tracing import recorded_spans


def _samples(metrics: MetricsRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in metrics.collector_registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_build_info_and_process_metrics_are_exposed() -> None:
    metrics = MetricsRegistry("wms-bridge")
    metrics.build_info("1.4.0")
    assert _samples(metrics, "waybill_build_info") == {
        (("service", "wms-bridge"), ("version", "1.4.0")): 1.0
    }
    text = metrics.render()[0].decode()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert f"\n{name}" in text, name


def test_a_breaker_has_a_closed_series_from_the_start_and_shows_half_open() -> None:
    metrics = MetricsRegistry("wms-bridge")
    bind_partner_metrics(metrics)
    now = [0.0]
    breaker = CircuitBreaker(
        1,
        reset_timeout_s=10,
        name="wms",
        clock=lambda: now[0],
        on_state_change=watch_circuits("wms"),
    )

    def state() -> str:
        [(labels, _)] = [
            (dict(k), v) for k, v in _samples(metrics, "waybill_circuit_breaker_state").items() if v
        ]
        return labels["state"]

    assert len(_samples(metrics, "waybill_circuit_breaker_state")) == 3
    assert state() == "closed"
    with recorded_spans() as exporter:
        with get_tracer().start_as_current_span("process waybill.cmd.warehouse.release_order.v1"):
            breaker.record_failure()
        [span] = exporter.get_finished_spans()
    assert state() == "open"
    [event] = span.events
    assert event.name == "circuit_breaker.state_change"
    assert dict(event.attributes or {})["waybill.circuit.to"] == "open"
    now[0] = 11.0
    assert str(breaker.state) == "half_open"
    assert state() == "half_open"
    breaker.record_success()
    assert state() == "closed"
