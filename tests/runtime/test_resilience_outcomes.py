"""How a handler's exception decides a message's fate (ack / retry / dead letter)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import msgspec
import nats.errors
import nats.js.errors
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from waybill_contracts.errors import ContractError, MalformedBody
from waybill_runtime.outcomes import (
    InvalidMessage,
    Outcome,
    PermanentError,
    RetryLater,
    TransientError,
    apply_jitter,
    backoff_delay,
    classify,
    error_type_name,
    is_transient,
    parse_retry_after,
)


def http_error(status: int, retry_after: str | None = None) -> aiohttp.ClientResponseError:
    headers: CIMultiDict[str] = CIMultiDict()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    url = URL("https://carrier-a.example/labels")
    info = aiohttp.RequestInfo(url, "POST", CIMultiDictProxy(CIMultiDict()), url)
    return aiohttp.ClientResponseError(
        info, (), status=status, message="status", headers=CIMultiDictProxy(headers)
    )


class Parcel(msgspec.Struct):
    weight_kg: float


def test_retry_later_is_retried_after_the_delay_it_asks_for() -> None:
    verdict = classify(RetryLater("waiting for the pick", delay_s=12.5))
    assert verdict.outcome is Outcome.RETRY
    assert verdict.delay_s == 12.5
    assert "waiting for the pick" in verdict.reason


def test_retry_later_without_delay_leaves_the_delay_to_the_backoff_schedule() -> None:
    assert classify(RetryLater()).delay_s is None


def test_transient_error_is_retried_after_its_retry_after() -> None:
    verdict = classify(TransientError("carrier busy", retry_after_s=3.0))
    assert (verdict.outcome, verdict.delay_s) == (Outcome.RETRY, 3.0)


@pytest.mark.parametrize(
    "error",
    [PermanentError("address refused"), InvalidMessage("order has no lines")],
    ids=["permanent", "invalid-message"],
)
def test_permanent_errors_go_to_the_dead_letter_stream(error: Exception) -> None:
    verdict = classify(error)
    assert verdict.outcome is Outcome.DEAD_LETTER
    assert verdict.delay_s is None
    assert str(error) in verdict.reason


def test_invalid_message_is_named_as_such_in_the_reason() -> None:
    assert classify(InvalidMessage("no lines")).reason.startswith("invalid message")


def test_msgspec_validation_error_is_dead_lettered() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(b'{"weight_kg": "heavy"}', type=Parcel)
    verdict = classify(caught.value)
    assert verdict.outcome is Outcome.DEAD_LETTER
    assert "weight_kg" in verdict.reason


def test_undecodable_json_is_dead_lettered() -> None:
    with pytest.raises(msgspec.DecodeError) as caught:
        msgspec.json.decode(b"{not json", type=Parcel)
    assert classify(caught.value).outcome is Outcome.DEAD_LETTER


@pytest.mark.parametrize(
    "error",
    [ContractError("bad ce-id", field="ce-id"), MalformedBody("not JSON", field="body")],
    ids=["contract-error", "subclass"],
)
def test_contract_errors_are_dead_lettered(error: Exception) -> None:
    verdict = classify(error)
    assert verdict.outcome is Outcome.DEAD_LETTER
    assert verdict.reason.startswith("contract violation")


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError(),
        ConnectionRefusedError("refused"),
        ConnectionResetError(),
        OSError("network unreachable"),
        aiohttp.ClientConnectionError("connection lost"),
        aiohttp.ServerTimeoutError("read timeout"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("body cut off"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_timeouts_and_connection_errors_are_retried(error: Exception) -> None:
    verdict = classify(error)
    assert verdict.outcome is Outcome.RETRY
    assert is_transient(error)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 425])
def test_http_5xx_and_retryable_4xx_are_retried(status: int) -> None:
    verdict = classify(http_error(status))
    assert verdict.outcome is Outcome.RETRY
    assert verdict.delay_s is None
    assert f"HTTP {status}" in verdict.reason
    assert "carrier-a.example" in verdict.reason


def test_http_429_honours_retry_after_seconds() -> None:
    verdict = classify(http_error(429, retry_after="42"))
    assert (verdict.outcome, verdict.delay_s) == (Outcome.RETRY, 42.0)


def test_http_429_honours_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    verdict = classify(http_error(429, retry_after=format_datetime(when, usegmt=True)))
    assert verdict.outcome is Outcome.RETRY
    assert verdict.delay_s is not None
    assert 60 < verdict.delay_s <= 90


def test_http_503_honours_retry_after_too() -> None:
    assert classify(http_error(503, retry_after="5")).delay_s == 5.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_http_4xx_are_dead_lettered(status: int) -> None:
    error = http_error(status)
    assert classify(error).outcome is Outcome.DEAD_LETTER
    assert not is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        nats.errors.TimeoutError(),
        nats.errors.ConnectionClosedError(),
        nats.errors.NoServersError(),
        nats.errors.NoRespondersError(),
        nats.errors.StaleConnectionError(),
        nats.js.errors.ServiceUnavailableError(),
        nats.js.errors.NoStreamResponseError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_nats_errors_are_retried(error: Exception) -> None:
    verdict = classify(error)
    assert verdict.outcome is Outcome.RETRY
    assert is_transient(error)


def test_unexpected_exception_is_retried_so_a_fix_can_be_deployed() -> None:
    error = KeyError("carrier_tracking_ref")
    verdict = classify(error)
    assert verdict.outcome is Outcome.RETRY
    assert verdict.reason.startswith("unexpected error: KeyError")
    # ...but a partner client does not retry a bug on the spot.
    assert not is_transient(error)


def test_cancellation_is_retried_not_dead_lettered() -> None:
    assert classify(asyncio.CancelledError()).outcome is Outcome.RETRY


def test_exception_group_with_a_permanent_member_is_dead_lettered() -> None:
    group = ExceptionGroup("booking", [TimeoutError(), PermanentError("refused")])
    verdict = classify(group)
    assert verdict.outcome is Outcome.DEAD_LETTER
    assert "refused" in verdict.reason


def test_exception_group_of_transient_members_waits_for_the_longest_delay() -> None:
    group = ExceptionGroup(
        "booking",
        [TransientError("a", retry_after_s=2.0), TransientError("b", retry_after_s=9.0)],
    )
    verdict = classify(group)
    assert (verdict.outcome, verdict.delay_s) == (Outcome.RETRY, 9.0)


def test_error_type_is_fully_qualified_except_for_builtins() -> None:
    assert error_type_name(TimeoutError()) == "TimeoutError"
    assert error_type_name(PermanentError()) == "waybill_runtime.outcomes.PermanentError"
    assert classify(ValueError("x")).error_type == "ValueError"


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-5", "Mon, 99 Foo 2024"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_in_the_past_means_now() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0


def test_retry_after_date_is_measured_from_now() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 May 2024 12:02:00 GMT", now=now) == 120.0


def test_backoff_follows_the_schedule_and_repeats_its_last_entry() -> None:
    schedule = (1.0, 5.0, 30.0)
    no_jitter = [backoff_delay(n, schedule, jitter=0.0) for n in range(1, 6)]
    assert no_jitter == [1.0, 5.0, 30.0, 30.0, 30.0]


def test_backoff_attempt_below_one_counts_as_the_first() -> None:
    assert backoff_delay(0, (2.0, 4.0), jitter=0.0) == 2.0


def test_backoff_jitter_stays_within_its_fraction() -> None:
    lowest = backoff_delay(1, (10.0,), jitter=0.2, rng=lambda: 0.0)
    highest = backoff_delay(1, (10.0,), jitter=0.2, rng=lambda: 0.999999)
    assert lowest == pytest.approx(8.0)
    assert highest == pytest.approx(12.0, abs=1e-4)


def test_backoff_with_an_empty_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="backoff schedule is empty"):
        backoff_delay(1, ())


def test_jitter_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        apply_jitter(1.0, 1.5)
