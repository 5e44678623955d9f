"""The subject map names every subject, stream, consumer and bucket, for any prefix."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from waybill_contracts import (
    KV_PURPOSES,
    KV_TTL_S,
    MESSAGE_TYPES,
    SERVICES,
    MessageKind,
    StreamSpec,
    SubjectMap,
    UnknownSubject,
    UnknownType,
)
from waybill_contracts.commands import BookShipment, ReleaseToWarehouse
from waybill_contracts.events import OrderReleased, ShipmentBooked
from waybill_contracts.messages import Event, QueryResponse
from waybill_contracts.queries import OrderStatusRequest, OrderStatusResponse


@pytest.fixture
def subjects() -> SubjectMap:
    return SubjectMap()


def test_event_and_command_subjects_follow_the_design(subjects: SubjectMap) -> None:
    assert subjects.subject_for(OrderReleased) == "waybill.evt.order.released.v1"
    assert subjects.subject_for(ShipmentBooked) == "waybill.evt.shipment.booked.v1"
    assert subjects.subject_for(BookShipment) == "waybill.cmd.carrier.book_shipment.v1"
    assert subjects.subject_for(ReleaseToWarehouse) == "waybill.cmd.warehouse.release_order.v1"


def test_a_query_request_and_its_response_share_the_query_subject(subjects: SubjectMap) -> None:
    assert subjects.subject_for(OrderStatusRequest) == "waybill.qry.orchestrator.order_status"
    assert subjects.subject_for(OrderStatusResponse) == subjects.subject_for(OrderStatusRequest)
    assert subjects.query_subject("orchestrator", "order_status") == (
        "waybill.qry.orchestrator.order_status"
    )
    carried = subjects.message_type_for_subject("waybill.qry.orchestrator.order_status")
    assert carried is OrderStatusRequest


def test_the_prefix_changes_every_name_but_never_the_ce_type() -> None:
    staging = SubjectMap("staging")
    assert staging.subject_for(OrderReleased) == "staging.evt.order.released.v1"
    assert staging.events_stream == StreamSpec("STAGING_EVENTS", ("staging.evt.>",))
    assert staging.kv_bucket("workflow") == "staging_workflow"
    assert staging.dlq_subject("notifier") == "staging.dlq.notifier"
    assert staging.ce_type_for(OrderReleased) == SubjectMap().ce_type_for(OrderReleased)


def test_every_message_subject_maps_back_to_its_type(subjects: SubjectMap) -> None:
    for message_type in MESSAGE_TYPES:
        if issubclass(message_type, QueryResponse):  # responses go to reply inboxes
            continue
        subject = subjects.subject_for(message_type)
        assert subjects.message_type_for_subject(subject) is message_type
        assert subjects.message_type_for_ce_type(subjects.ce_type_for(message_type)) is (
            message_type
        )


def test_subjects_are_unique_and_inside_their_stream(subjects: SubjectMap) -> None:
    channels = subjects.channels
    assert len({c.subject for c in channels}) == len(channels)
    assert sum(len(c.message_types) for c in channels) == len(MESSAGE_TYPES)
    for channel in channels:
        first = channel.message_types[0]
        if issubclass(first, Event):
            assert channel.subject.startswith("waybill.evt.")
        elif first.kind is MessageKind.COMMAND:
            assert channel.subject.startswith("waybill.cmd.")
        else:
            assert channel.subject.startswith("waybill.qry.")


def test_streams_capture_their_kind_of_subject(subjects: SubjectMap) -> None:
    assert subjects.events_stream == StreamSpec("WAYBILL_EVENTS", ("waybill.evt.>",))
    assert subjects.commands_stream == StreamSpec("WAYBILL_COMMANDS", ("waybill.cmd.>",))
    assert subjects.dlq_stream == StreamSpec("WAYBILL_DLQ", ("waybill.dlq.>",))
    assert subjects.streams == (
        subjects.events_stream,
        subjects.commands_stream,
        subjects.dlq_stream,
    )


def test_consumer_bucket_and_dead_letter_names(subjects: SubjectMap) -> None:
    assert subjects.durable("orchestrator", "events") == "orchestrator-events"
    assert subjects.dlq_subject("carrier-router") == "waybill.dlq.carrier-router"
    assert [subjects.kv_bucket(p) for p in KV_PURPOSES] == [
        "waybill_workflow",
        "waybill_idempotency",
        "waybill_watermarks",
        "waybill_traces",
        "waybill_contacts",
        "waybill_tracking",
    ]
    assert subjects.query_service_name("orchestrator") == "waybill-orchestrator"


def test_the_services_are_fixed(subjects: SubjectMap) -> None:
    assert [str(s) for s in subjects.services] == [
        "odoo-gateway",
        "orchestrator",
        "wms-bridge",
        "carrier-router",
        "notifier",
        "auditor",
    ]
    assert subjects.services == SERVICES


def test_advisories_cover_exhausted_and_terminated_messages(subjects: SubjectMap) -> None:
    advisories = subjects.advisory_subjects()
    assert "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.WAYBILL_COMMANDS.*" in advisories
    assert "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.WAYBILL_EVENTS.*" in advisories


@pytest.mark.parametrize("prefix", ["", "way.bill", "way bill", "way*", ">", "wäybill"])
def test_a_prefix_that_is_not_one_token_is_refused_by_name(prefix: str) -> None:
    with pytest.raises(ValueError, match="subject prefix"):
        SubjectMap(prefix)


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda s: s.durable("orchestrator", "a.b"), "purpose"),
        (lambda s: s.durable("orch estrator", "events"), "service"),
        (lambda s: s.dlq_subject("x.>"), "service"),
        (lambda s: s.query_subject("orchestrator", "*"), "query"),
    ],
)
def test_names_built_from_tokens_refuse_bad_tokens(
    call: Callable[[SubjectMap], str], what: str
) -> None:
    with pytest.raises(ValueError, match=what):
        call(SubjectMap())


def test_every_bucket_purpose_has_a_documented_ttl_and_personal_data_expires() -> None:
    assert set(KV_TTL_S) == set(KV_PURPOSES)
    assert all(ttl is None or ttl > 0 for ttl in KV_TTL_S.values())
    # Customer contacts are personal data and tracking progress grows with every
    # label: neither may be kept for ever.
    assert KV_TTL_S["contacts"] is not None and KV_TTL_S["contacts"] <= 90 * 86_400
    assert KV_TTL_S["tracking"] is not None
    assert KV_TTL_S["workflow"] is None and KV_TTL_S["watermarks"] is None


def test_an_unknown_bucket_purpose_is_refused_with_the_known_ones(subjects: SubjectMap) -> None:
    with pytest.raises(ValueError, match=r"'cache'.*workflow, idempotency, watermarks"):
        subjects.kv_bucket("cache")


def test_an_unknown_subject_raises_the_typed_error(subjects: SubjectMap) -> None:
    with pytest.raises(UnknownSubject) as caught:
        subjects.message_type_for_subject("waybill.evt.order.teleported.v1")
    assert caught.value.field == "subject"
    assert subjects.find_message_type("waybill.evt.order.teleported.v1") is None


def test_a_type_outside_the_catalog_has_no_subject(subjects: SubjectMap) -> None:
    with pytest.raises(UnknownType):
        subjects.subject_for(Event)


def test_subject_templates_are_the_subject_or_temporary_for_inboxes(
    subjects: SubjectMap,
) -> None:
    subject = subjects.subject_for(BookShipment)
    assert subjects.subject_template(subject) == subject
    assert subjects.subject_template("_INBOX.abc123.def") == "(temporary)"


def test_maps_with_the_same_prefix_are_equal() -> None:
    assert SubjectMap("a") == SubjectMap("a")
    assert SubjectMap("a") != SubjectMap("b")
    assert len({SubjectMap("a"), SubjectMap("a")}) == 1
