"""Webhook signature checks and the periodic runner."""

from __future__ import annotations

import asyncio
import base64

import pytest

from waybill_runtime.periodic import every
from waybill_runtime.signatures import (
    SignatureError,
    check_timestamp,
    hmac_sha256,
    verify_hmac_sha256,
)

SECRET = b"wms-secret"
BODY = b'{"event":"picked","order":"WH/OUT/1"}'


def test_a_correct_hex_signature_passes() -> None:
    verify_hmac_sha256(SECRET, BODY, hmac_sha256(SECRET, BODY).hex())


def test_a_correct_base64_signature_passes() -> None:
    signature = base64.b64encode(hmac_sha256(SECRET, BODY)).decode()
    verify_hmac_sha256(SECRET, BODY, signature, encoding="base64")


@pytest.mark.parametrize(
    ("signature", "complaint"),
    [
        (None, "missing"),
        ("", "missing"),
        ("zz-not-hex", "not valid hex"),
        (hmac_sha256(SECRET, BODY + b" ").hex(), "does not match"),
        (hmac_sha256(b"other-secret", BODY).hex(), "does not match"),
    ],
)
def test_bad_signatures_are_rejected_with_the_reason(signature: str | None, complaint: str) -> None:
    with pytest.raises(SignatureError, match=complaint):
        verify_hmac_sha256(SECRET, BODY, signature)


def test_timestamps_within_tolerance_pass_and_stale_or_future_ones_fail() -> None:
    now = 1_800_000_000.0
    assert check_timestamp("1800000100", clock=lambda: now) == 1_800_000_100
    with pytest.raises(SignatureError, match="old"):
        check_timestamp("1799999000", clock=lambda: now)
    with pytest.raises(SignatureError, match="future"):
        check_timestamp("1800001000", clock=lambda: now)
    with pytest.raises(SignatureError, match="Unix seconds"):
        check_timestamp("yesterday", clock=lambda: now)
    with pytest.raises(SignatureError, match="missing"):
        check_timestamp(None, clock=lambda: now)


async def test_periodic_work_keeps_running_after_a_failing_round() -> None:
    rounds: list[int] = []
    third = asyncio.Event()

    async def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) >= 3:
            third.set()
        if len(rounds) == 1:
            raise ConnectionError("partner down")

    async with every(0.01, work, name="test poll", first_after_s=0):
        await asyncio.wait_for(third.wait(), timeout=10)
    count = len(rounds)
    await asyncio.sleep(0.05)
    assert count >= 3
    assert len(rounds) == count  # stopped when the block ended


def test_kv_keys_are_readable_and_one_to_one() -> None:
    from waybill_runtime.idempotency import kv_key

    assert kv_key("WH/OUT/00042") == "WH_2fOUT_2f00042"
    assert kv_key("A/B") != kv_key("A_2fB")
    assert kv_key("a.b") != kv_key("a_2eb")
    assert all(c.isalnum() or c in "-=_" for c in kv_key("Zoë's order #1 ."))


def _kept_in_kv_key(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "-=")


def _utf8_escaped(char: str) -> str:
    return "".join(f"_{byte:02x}" for byte in char.encode())


def test_kv_keys_spell_every_character_as_itself_or_its_utf8_bytes() -> None:
    from waybill_runtime.idempotency import kv_key

    # ASCII keys take the translation table, others the per-character path: both spell
    # each character the same way.
    every_ascii = "".join(chr(code) for code in range(128))
    for key in (every_ascii, every_ascii + "ë", "Zoë/€"):
        expected = "".join(c if _kept_in_kv_key(c) else _utf8_escaped(c) for c in key)
        assert kv_key(key) == expected
    assert kv_key("wms-fact:WH/OUT/1.picked") == "wms-fact_3aWH_2fOUT_2f1_2epicked"
    assert kv_key("Zoë") == "Zo_c3_ab"


async def test_a_task_that_swallows_its_cancellation_is_still_stopped() -> None:
    from waybill_runtime.cancellation import cancel_and_wait

    cancellations = 0

    async def stubborn() -> None:
        nonlocal cancellations
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancellations += 1
                if cancellations == 1:
                    continue  # what wait_for can do on Python 3.11: carry on
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, every_s=0.01), timeout=10)
    assert task.done()
    assert cancellations == 2
