"""Return emails (issue 20): the customer gets the return label, a reminder when the parcel is
late, and the credit confirmation, once each however often the events are delivered; a return
closed without a credit tells nobody; a return whose order's release is no longer remembered
is mailed to the customer the return names."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NatsClient

from tests.services.notifier.harness import notifier_and_sinks
from waybill_contracts.events import (
    ReturnCompleted,
    ReturnLabelBooked,
    ReturnParcelOverdue,
    ReturnRequested,
)
from waybill_contracts.examples import example_of
from waybill_contracts.model import NotificationChannel, Party

REF = "WH/OUT/00300"


def label_booked(ref: str) -> ReturnLabelBooked:
    event = example_of(ReturnLabelBooked)
    label = msgspec.structs.replace(
        event.label, order_ref=ref, label_ref="https://labels.example/ret-300.pdf"
    )
    return msgspec.structs.replace(event, return_id=f"RET-{ref}", order_ref=ref, label=label)


def overdue(ref: str) -> ReturnParcelOverdue:
    event = example_of(ReturnParcelOverdue)
    return msgspec.structs.replace(
        event, return_id=f"RET-{ref}", order_ref=ref, label=label_booked(ref).label
    )


def completed(ref: str, *, credited: bool = True) -> ReturnCompleted:
    event = example_of(ReturnCompleted)
    changes: dict[str, object] = {"return_id": f"RET-{ref}", "order_ref": ref}
    if not credited:
        changes.update(credited=None, credit_note_ref=None)
    return msgspec.structs.replace(event, **changes)


async def test_label_reminder_and_credit_are_mailed_once_each(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.release(REF, email="marie@example.com", name="Marie Jansen")
        for _ in range(2):  # each redelivered
            await rig.publish(label_booked(REF))
            await rig.publish(overdue(REF), source="orchestrator")
            await rig.publish(completed(REF), source="orchestrator")
        await rig.wait_for_sent(3, NotificationChannel.EMAIL)
        await rig.settled()
        sent = await rig.sent(NotificationChannel.EMAIL)
    assert sorted(s.template for s in sent) == [
        "return_credited",
        "return_label",
        "return_reminder",
    ]
    mails = {mail.subject: mail for mail in rig.smtp.messages}
    assert set(mails) == {
        f"Your return label for order {REF}",
        f"Reminder: your return for order {REF} has not reached us yet",
        f"Your return for order {REF} is credited",
    }
    label = mails[f"Your return label for order {REF}"]
    assert label.rcpt_tos == ["marie@example.com"]
    assert label.text is not None and "https://labels.example/ret-300.pdf" in label.text
    tracking = label_booked(REF).label.tracking_number
    assert tracking in label.text
    credit = mails[f"Your return for order {REF} is credited"]
    assert credit.text is not None and "12.50 EUR" in credit.text
    assert "RINV/2025/00003" in credit.text


async def test_a_return_closed_without_credit_tells_nobody(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.release(REF)
        await rig.publish(completed(REF, credited=False), source="orchestrator")
        await rig.settled()
        assert await rig.sent() == []
        assert await rig.dead_letters() == []


async def test_the_customer_named_by_the_return_is_told_when_the_release_is_forgotten(
    nc: NatsClient, nats_url: str, nats_prefix: str
) -> None:
    ref = "WH/OUT/00301"
    request = msgspec.structs.replace(
        example_of(ReturnRequested),
        return_id=f"RET-{ref}",
        order_ref=ref,
        customer=Party(name="Jan de Vries", email="jan@example.com", locale="nl_NL"),
    )
    async with notifier_and_sinks(nc, nats_url, nats_prefix) as rig:
        await rig.publish(request, source="odoo-gateway")
        await rig.publish(label_booked(ref))
        [sent] = await rig.wait_for_sent(1, NotificationChannel.EMAIL)
        await rig.settled()
    assert sent.recipient == "jan@example.com"
    [mail] = rig.smtp.messages
    assert mail.subject == f"Je retourlabel voor bestelling {ref}"
