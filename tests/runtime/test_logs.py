"""JSON log lines carry service, trace and correlation ids; personal data is treated by the
policy (emails hashed, phones and names masked, addresses dropped) and secrets cut out."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from waybill_contracts import MessageContext
from waybill_runtime.logs import (
    PiiMaskingFilter,
    SecretRedactingFilter,
    configure_logging,
    correlation_id_var,
    correlation_scope,
    handled_message_var,
    mask_email,
    mask_field,
    mask_name,
    mask_phone,
    mask_text,
)
from waybill_runtime.personal_data import hash_email

log = logging.getLogger("waybill.test.logs")

JANE = hash_email("jane.doe@example.com")


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """Leave the root logger as it was found."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def stream(root_logger: logging.Logger) -> io.StringIO:
    out = io.StringIO()
    configure_logging("carrier-router", "DEBUG", stream=out)
    return out


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_json_with_time_severity_service_logger_and_message(
    stream: io.StringIO,
) -> None:
    log.info("booked %s with %s", "SO042", "carrier-a")
    [line] = lines(stream)
    # The OpenTelemetry log data model's names, where a collector looks for them.
    assert (line["severity_text"], line["severity_number"]) == ("INFO", 9)
    assert line["service.name"] == "carrier-router"
    assert line["logger"] == "waybill.test.logs"
    assert line["message"] == "booked SO042 with carrier-a"
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert "trace_id" not in line and "correlation_id" not in line


def test_extra_fields_are_written_beside_the_message(stream: io.StringIO) -> None:
    log.warning("label bought", extra={"order_ref": "SO042", "cost": 7.5, "severity_text": "clash"})
    [line] = lines(stream)
    assert line["order_ref"] == "SO042"
    assert line["cost"] == 7.5
    assert (line["severity_text"], line["severity_number"]) == ("WARNING", 13)
    assert line["extra_severity_text"] == "clash"


def test_lines_carry_the_trace_and_span_of_the_current_span(stream: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("process waybill.cmd.carrier.book_shipment.v1") as span:
        log.info("inside")
    context = span.get_span_context()
    [line] = lines(stream)
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    assert line["trace_flags"] == f"{context.trace_flags:02x}"


def test_without_an_sdk_lines_carry_the_trace_of_the_message_being_handled(
    stream: io.StringIO,
) -> None:
    message = MessageContext(
        id="m-1",
        type="waybill.cmd.carrier.book_shipment.v1",
        source="waybill/orchestrator",
        time=datetime.now(UTC),
        subject="SO042",
        correlation_id="SO042",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    token = handled_message_var.set(message)
    try:
        log.info("inside")
    finally:
        handled_message_var.reset(token)
    log.info("outside")
    inside, outside = lines(stream)
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (inside["span_id"], inside["trace_flags"]) == ("00f067aa0ba902b7", "01")
    assert inside["correlation_id"] == "SO042"
    assert "trace_id" not in outside and "correlation_id" not in outside


def test_lines_carry_the_correlation_id_of_the_message_being_processed(
    stream: io.StringIO,
) -> None:
    with correlation_scope("SO042"):
        log.info("inside")
    log.info("outside")
    inside, outside = lines(stream)
    assert inside["correlation_id"] == "SO042"
    assert "correlation_id" not in outside
    assert correlation_id_var.get() is None


def test_exceptions_are_written_as_type_message_and_traceback(stream: io.StringIO) -> None:
    try:
        raise ValueError("no carrier for jane.doe@example.com")
    except ValueError:
        log.exception("booking failed")
    [line] = lines(stream)
    assert line["exception.type"] == "ValueError"
    assert line["exception.message"] == f"no carrier for {JANE}"
    assert "Traceback" in line["exception.stacktrace"]
    assert "jane.doe" not in json.dumps(line)


def test_values_json_cannot_encode_are_written_as_text(stream: io.StringIO) -> None:
    log.info("odd extra", extra={"carrier": object()})
    [line] = lines(stream)
    assert line["carrier"].startswith("<object object")


def test_emails_and_phones_in_messages_are_masked(stream: io.StringIO) -> None:
    log.info("notify %s at %s", "jane.doe@example.com", "+44 20 7946 0958")
    [line] = lines(stream)
    assert line["message"] == f"notify {JANE} at ***58"


def test_personal_data_extra_fields_are_hashed_masked_or_dropped(stream: io.StringIO) -> None:
    log.info(
        "address checked",
        extra={
            "customer_email": "jane.doe@example.com",
            "phone": "030 1234 5678",
            "recipient_name": "Jane Doe",
            "street": "1 Main Street",
            "order_ref": "SO042",
        },
    )
    [line] = lines(stream)
    assert line["customer_email"] == JANE
    assert line["phone"] == "***78"
    assert line["recipient_name"] == "J*** D***"
    assert "street" not in line  # addresses are dropped
    assert line["order_ref"] == "SO042"


def test_personal_data_inside_structured_and_text_extras_is_treated_too(
    stream: io.StringIO,
) -> None:
    log.info(
        "checked",
        extra={
            "party": {"email": "jane.doe@example.com", "zip": "1011 AB", "city": "Amsterdam"},
            "note": "customer asks to call +44 20 7946 0958",
        },
    )
    [line] = lines(stream)
    assert line["party"] == {"email": JANE, "city": "Amsterdam"}
    assert line["note"] == "customer asks to call ***58"


def test_text_mode_writes_readable_lines_with_the_same_ids(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("notifier", "info", stream=out, json=False)
    with correlation_scope("SO7"):
        log.info("mail to %s sent", "jane@example.com", extra={"template": "shipped"})
    text = out.getvalue()
    jane = hash_email("jane@example.com")
    assert f" INFO notifier waybill.test.logs: mail to {jane} sent" in text
    assert "correlation_id=SO7" in text
    assert "template=shipped" in text


def test_the_level_filters_lines(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("notifier", "WARNING", stream=out)
    log.info("quiet")
    log.warning("loud")
    assert [line["message"] for line in lines(out)] == ["loud"]


def test_configuring_again_replaces_the_handler(root_logger: logging.Logger) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("notifier", "INFO", stream=first)
    handler = configure_logging("notifier", "INFO", stream=second)
    log.info("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1
    assert handler in root_logger.handlers


def test_an_unknown_level_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        configure_logging("notifier", "LOUD", stream=io.StringIO())


@pytest.mark.parametrize(
    ("value", "masked"),
    [("jane.doe@example.com", JANE), (" Jane.Doe@Example.com ", JANE), ("", "")],
)
def test_mask_email_hashes_the_whole_address(value: str, masked: str) -> None:
    assert mask_email(value) == masked


def test_nothing_of_an_email_survives_masking_not_even_its_domain() -> None:
    masked = mask_email("jane.doe@doe-family.example")
    assert masked.startswith("email:") and len(masked) == len("email:") + 10
    assert not {"jane", "doe", "family", "example", "@"} & set(masked.replace(":", " ").split())
    assert "doe" not in masked and "@" not in masked
    assert mask_email("john@doe-family.example") != masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [("+44 20 7946 0958", "***58"), ("(555) 123-4567", "***67"), ("12", "***"), ("", "")],
)
def test_mask_phone(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


def test_mask_name_keeps_initials_only() -> None:
    assert mask_name("Jane  van Doe") == "J*** v*** D***"


@pytest.mark.parametrize(
    "text",
    [
        "order SO042 shipped on 2024-05-01 12:30:45",
        "tracking 9400111899223856925532 via 10.0.12.200",
        "picking 4812 weight 12.5 kg, 3 parcels",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_ids_dates_and_addresses_of_machines_are_not_mistaken_for_phones(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call +447911123456 now", "call ***56 now"),
        ("call 555-123-4567 now", "call ***67 now"),
        ("call (555) 123-4567", "call ***67"),
        ("mail ops@carrier-a.example.com", f"mail {hash_email('ops@carrier-a.example.com')}"),
    ],
)
def test_obvious_phones_and_emails_in_text_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_mask_field_masks_by_field_name_only() -> None:
    assert mask_field("partner_phone", "+49 30 1234567") == "***67"
    assert mask_field("zip", 12345) == "***"
    assert mask_field("carrier", "carrier-a") == "carrier-a"
    assert mask_field("email", None) is None


def test_the_masking_filter_can_be_used_on_its_own() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s", ("jane@example.com",), None)
    assert PiiMaskingFilter().filter(record)
    assert record.getMessage() == f"to {hash_email('jane@example.com')}"


def test_secrets_are_cut_out_of_messages_extras_and_tracebacks(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("wms-bridge", "INFO", stream=out, secrets=["wms-4420a49b15cd", "abc"])
    try:
        raise ConnectionError("http://wms/api?key=wms-4420a49b15cd refused")
    except ConnectionError:
        log.exception("calling with %s", "wms-4420a49b15cd", extra={"key": "wms-4420a49b15cd"})
    [line] = lines(out)
    assert "wms-4420a49b15cd" not in out.getvalue()
    assert line["message"] == "calling with ***"
    assert line["key"] == "***"
    assert line["exception.message"] == "http://wms/api?key=*** refused"
    assert "key=*** refused" in line["exception.stacktrace"]


def test_short_values_are_not_taken_for_secrets() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a cab", (), None)
    assert SecretRedactingFilter(["abc", "ab"]).filter(record)
    assert record.getMessage() == "a cab"


def test_text_mode_tracebacks_are_redacted_too(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("wms-bridge", "INFO", stream=out, json=False, secrets=["s3cr3t-value"])
    try:
        raise RuntimeError("token s3cr3t-value for jane@example.com")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    assert "s3cr3t-value" not in text and "jane@example.com" not in text
    assert "RuntimeError: token *** for email:" in text
