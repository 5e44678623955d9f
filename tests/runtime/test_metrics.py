"""Message metrics per service instance, in Prometheus text."""

from __future__ import annotations

import pytest
from prometheus_client import Counter

from waybill_runtime.metrics import Children, MetricsRegistry
from waybill_runtime.outcomes import Outcome

SUBJECT = "waybill.cmd.carrier.book_shipment.v1"
LABELS = {"service": "carrier-router", "consumer": "carrier-router-cmd", "subject": SUBJECT}


@pytest.fixture
def metrics() -> MetricsRegistry:
    return MetricsRegistry("carrier-router")


def sample(metrics: MetricsRegistry, name: str, **labels: str) -> float:
    value = metrics.collector_registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_an_acknowledged_delivery_counts_as_processed_with_its_duration(
    metrics: MetricsRegistry,
) -> None:
    metrics.handler("carrier-router-cmd", SUBJECT).record(Outcome.ACK, 0.2)
    assert sample(metrics, "waybill_messages_processed_total", **LABELS) == 1
    assert sample(metrics, "waybill_handler_duration_seconds_count", **LABELS) == 1
    assert sample(metrics, "waybill_handler_duration_seconds_sum", **LABELS) == pytest.approx(0.2)
    assert sample(metrics, "waybill_messages_failed_total", **LABELS, error_type="unknown") == 0


def test_a_retried_delivery_counts_as_failed_by_error_type_and_retried(
    metrics: MetricsRegistry,
) -> None:
    handler = metrics.handler("carrier-router-cmd", SUBJECT)
    handler.record(Outcome.RETRY, 1.5, "TimeoutError")
    handler.record(Outcome.RETRY, 1.5, "TimeoutError")
    assert sample(metrics, "waybill_messages_retried_total", **LABELS) == 2
    assert (
        sample(metrics, "waybill_messages_failed_total", **LABELS, error_type="TimeoutError") == 2
    )
    assert sample(metrics, "waybill_messages_processed_total", **LABELS) == 0


def test_a_dead_lettered_delivery_counts_as_failed_and_dead_lettered(
    metrics: MetricsRegistry,
) -> None:
    metrics.handler("carrier-router-cmd", SUBJECT).record(Outcome.DEAD_LETTER, 0.01)
    assert sample(metrics, "waybill_messages_dead_lettered_total", **LABELS) == 1
    assert sample(metrics, "waybill_messages_failed_total", **LABELS, error_type="unknown") == 1
    assert sample(metrics, "waybill_messages_retried_total", **LABELS) == 0


def test_bound_metrics_are_cached_for_the_hot_path(metrics: MetricsRegistry) -> None:
    handler = metrics.handler("c", SUBJECT)
    assert metrics.handler("c", SUBJECT) is handler
    assert handler.failed("TimeoutError") is handler.failed("TimeoutError")
    assert metrics.consumer_lag("c") is metrics.consumer_lag("c")
    assert metrics.published(SUBJECT) is metrics.published(SUBJECT)


def test_consumer_lag_and_published_messages_are_exposed(metrics: MetricsRegistry) -> None:
    metrics.consumer_lag("carrier-router-cmd").set(17)
    metrics.published("waybill.evt.shipment.booked.v1").inc(3)
    assert (
        sample(
            metrics,
            "waybill_consumer_pending_messages",
            service="carrier-router",
            consumer="carrier-router-cmd",
        )
        == 17
    )
    assert (
        sample(
            metrics,
            "waybill_messages_published_total",
            service="carrier-router",
            subject="waybill.evt.shipment.booked.v1",
        )
        == 3
    )


def test_render_gives_prometheus_text_with_every_standard_metric(
    metrics: MetricsRegistry,
) -> None:
    metrics.handler("c", SUBJECT).record(Outcome.RETRY, 0.1, "TimeoutError")
    metrics.consumer_lag("c").set(1)
    metrics.published(SUBJECT).inc()
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for name in (
        "waybill_messages_processed_total",
        "waybill_messages_failed_total",
        "waybill_messages_retried_total",
        "waybill_messages_dead_lettered_total",
        "waybill_handler_duration_seconds_bucket",
        "waybill_consumer_pending_messages",
        "waybill_messages_published_total",
    ):
        assert f"\n{name}{{" in text


def test_two_registries_in_one_process_do_not_collide() -> None:
    gateway, router = MetricsRegistry("odoo-gateway"), MetricsRegistry("carrier-router")
    gateway.published(SUBJECT).inc()
    assert b"odoo-gateway" in gateway.render()[0]
    assert b"odoo-gateway" not in router.render()[0]


def test_services_add_their_own_metrics_once(metrics: MetricsRegistry) -> None:
    labels_bought = metrics.counter("waybill_labels_bought_total", "Labels bought.", ["carrier"])
    assert metrics.counter("waybill_labels_bought_total", "Labels bought.", ["carrier"]) is (
        labels_bought
    )
    assert isinstance(labels_bought, Counter)
    labels_bought.labels("carrier-a").inc()
    metrics.gauge("waybill_open_circuits", "Circuits open now.").set(2)
    metrics.histogram("waybill_label_price", "Label price.", buckets=(1, 5, 10)).observe(4)
    text = metrics.render()[0].decode()
    assert 'waybill_labels_bought_total{carrier="carrier-a"} 1.0' in text
    assert "waybill_open_circuits 2.0" in text
    assert 'waybill_label_price_bucket{le="5.0"} 1.0' in text


def test_reusing_a_metric_name_for_another_kind_is_refused(metrics: MetricsRegistry) -> None:
    metrics.counter("waybill_labels_bought_total", "Labels bought.")
    with pytest.raises(ValueError, match="already exists as a counter"):
        metrics.gauge("waybill_labels_bought_total", "Labels bought.")


def test_a_name_taken_by_a_standard_metric_is_refused(metrics: MetricsRegistry) -> None:
    with pytest.raises(ValueError, match="waybill_messages_published"):
        metrics.counter("waybill_messages_published_total", "Clash.")


def test_a_labelled_child_is_looked_up_once_and_counts_under_its_labels(
    metrics: MetricsRegistry,
) -> None:
    counter = metrics.counter("waybill_test_outcomes_total", "Outcomes.", ("carrier", "outcome"))
    looked_up: list[tuple[str, ...]] = []
    labels = counter.labels

    def lookup(*values: str) -> Counter:
        looked_up.append(values)
        return labels(*values)

    counter.labels = lookup  # type: ignore[method-assign,assignment]
    outcomes = Children(counter, "carrier-a")
    for outcome in ("accepted", "accepted", "duplicate", "accepted"):
        outcomes(outcome).inc()
    assert looked_up == [("carrier-a", "accepted"), ("carrier-a", "duplicate")]
    registry = metrics.collector_registry
    sample = "waybill_test_outcomes_total"
    assert registry.get_sample_value(sample, {"carrier": "carrier-a", "outcome": "accepted"}) == 3
    assert registry.get_sample_value(sample, {"carrier": "carrier-a", "outcome": "duplicate"}) == 1
