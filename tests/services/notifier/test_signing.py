"""Standard Webhooks signatures: the specification's test vector and the reference verifier."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from waybill_notifier import sign_standard_webhook
from waybill_notifier.signing import decode_secret

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'


def test_the_specification_test_vector_signs_as_published() -> None:
    signature = sign_standard_webhook(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_reference_library_verifies_our_signature() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = b'{"type": "shipment.booked", "data": {"order_ref": "WH/OUT/00001"}}'
    timestamp = int(time.time())
    headers = {
        "webhook-id": "msg_abc",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard_webhook(secret, "msg_abc", timestamp, body),
    }
    assert Webhook(secret).verify(body, headers)["data"]["order_ref"] == "WH/OUT/00001"


def test_the_reference_library_rejects_a_signature_made_with_another_secret() -> None:
    body = b"{}"
    timestamp = int(time.time())
    ours = "whsec_" + base64.b64encode(b"a" * 32).decode()
    theirs = "whsec_" + base64.b64encode(b"b" * 32).decode()
    headers = {
        "webhook-id": "msg_abc",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard_webhook(ours, "msg_abc", timestamp, body),
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(theirs).verify(body, headers)


def test_the_signature_changes_with_the_body_the_id_and_the_timestamp() -> None:
    base = sign_standard_webhook(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert sign_standard_webhook(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, b"{}") != base
    assert sign_standard_webhook(VECTOR_SECRET, "msg_other", VECTOR_TIMESTAMP, VECTOR_BODY) != base
    assert (
        sign_standard_webhook(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP + 1, VECTOR_BODY) != base
    )


@pytest.mark.parametrize(
    ("secret", "complaint"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"),
        ("whsec_not base64!", "valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 random bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 random bytes"),
    ],
)
def test_a_malformed_secret_is_refused_with_the_reason(secret: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        decode_secret(secret)
    with pytest.raises(ValueError, match=complaint):
        sign_standard_webhook(secret, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)


@pytest.mark.parametrize("msg_id", ["", "msg.with.dots"])
def test_an_id_that_would_make_the_signed_content_ambiguous_is_refused(msg_id: str) -> None:
    with pytest.raises(ValueError, match="free of dots"):
        sign_standard_webhook(VECTOR_SECRET, msg_id, VECTOR_TIMESTAMP, VECTOR_BODY)
