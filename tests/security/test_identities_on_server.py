"""Every installed service's NATS identity, on a real nats-server with authorization on.

Generated from the declarations: each service may publish what it publishes
and sends and nothing else (the server refuses the rest and nothing is
stored), may not read another service's replies, commands or durables, and
nobody connects without credentials.
"""

from __future__ import annotations

import asyncio
import functools

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from waybill_contracts import MESSAGE_TYPES, MessageKind
from waybill_contracts.commands import BookShipment, RecordShipmentInOdoo
from waybill_runtime.local.registry import installed_services, load_services
from waybill_runtime.security.permissions import ADMIN, inbox_prefix
from waybill_runtime.testing.secured import SecuredNats, connect_as, provision_all
from waybill_runtime.testing.streams import stream_count
from waybill_runtime.testing.waiting import eventually

SERVICES = installed_services()


class Violations:
    """Permission violations the server reported to one client, by subject (lower case:
    nats-py lowers the server's error text)."""

    def __init__(self) -> None:
        self.subjects: set[str] = set()

    async def record(self, error: Exception) -> None:
        text = str(error)
        if "permissions violation" in text:
            self.subjects.add(text.rpartition(" to ")[2].strip('"').lower())

    def cover(self, subjects: list[str] | set[str]) -> bool:
        return {s.lower() for s in subjects} <= self.subjects

    def include(self, subject: str) -> bool:
        return subject.lower() in self.subjects


async def _connect(secured: SecuredNats, name: str) -> tuple[NatsClient, Violations]:
    violations = Violations()
    return await connect_as(secured, name, error_cb=violations.record), violations


async def _listed_keys(kv: KeyValue) -> list[str]:
    try:
        return await kv.keys()
    except NoKeysError:
        # nats-py's key watcher can end before a just-written entry reaches it on a
        # loaded machine: a refused consumer would time out instead, so try again.
        return []


def _message_subjects(secured: SecuredNats) -> dict[str, str]:
    """Every event and command subject under the server's prefix, by ce-type."""
    return {
        t.ce_type(): secured.subjects.subject_for(t)
        for t in MESSAGE_TYPES
        if t.kind in (MessageKind.EVENT, MessageKind.COMMAND)
    }


def _stream_of(secured: SecuredNats, subject: str) -> str:
    kind = subject.removeprefix(secured.prefix + ".").split(".")[0]
    return (
        secured.subjects.events_stream.name
        if kind == "evt"
        else secured.subjects.commands_stream.name
    )


@pytest.mark.parametrize("name", SERVICES)
async def test_a_service_publishes_what_it_declares_and_the_server_refuses_the_rest(
    secured_nats: SecuredNats, name: str
) -> None:
    await provision_all(secured_nats)
    declaration = load_services([name])[name].describe(subject_prefix=secured_nats.prefix)
    allowed = {m.subject for m in (*declaration.publishes, *declaration.sends)}
    # The replayer of dead letters (the auditor, for the control tower) may put any event or
    # command back, as the operator identity may; the rest still may not.
    forbidden = (
        []
        if declaration.replays_dead_letters
        else sorted(set(_message_subjects(secured_nats).values()) - allowed)
    )
    # Another service's dead letters and another service's durables are not its own either
    # (the mesh's watcher writes the letters of messages nobody settled, for any service).
    others = [other for other in SERVICES if other != name]
    if not declaration.watches_mesh:
        forbidden += [secured_nats.subjects.dlq_subject(other) for other in others]
    forbidden += [
        f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}"
        for other in others
        for c in load_services([other])[other].describe(subject_prefix=secured_nats.prefix).consumes
    ]
    nc, violations = await _connect(secured_nats, name)
    admin = await connect_as(secured_nats, ADMIN)
    try:
        for subject in [*allowed, *forbidden]:
            await nc.publish(subject, b"{}")
        await nc.flush()
        await eventually(
            lambda: _current(violations.subjects),
            until=lambda _: violations.cover(forbidden),
            timeout_s=10,
            what=f"a permissions violation for every subject {name} may not publish on",
        )
        refused = [subject for subject in allowed if violations.include(subject)]
        assert not refused, f"{name} was refused what it declares"
        for subject in forbidden:
            if subject.startswith(secured_nats.prefix + "."):
                stream = (
                    secured_nats.subjects.dlq_stream.name
                    if ".dlq." in subject
                    else _stream_of(secured_nats, subject)
                )
                assert await stream_count(admin, stream, subject) == 0, f"{subject} was stored"
        for subject in allowed:
            stored = await stream_count(admin, _stream_of(secured_nats, subject), subject)
            assert stored == 1, f"{name} may publish {subject}, but it was not stored"
    finally:
        await nc.close()
        await admin.close()


async def _current(value: set[str]) -> set[str]:
    return set(value)


@pytest.mark.parametrize("name", SERVICES)
async def test_a_service_may_not_read_another_services_replies_or_commands(
    secured_nats: SecuredNats, name: str
) -> None:
    others = [other for other in SERVICES if other != name]
    commands = [
        secured_nats.subjects.subject_for(t) for t in MESSAGE_TYPES if t.kind is MessageKind.COMMAND
    ]
    refused = [
        *(f"{inbox_prefix(other)}.>" for other in others),
        "_INBOX.>",  # nats-py's default inbox: everyone else's replies
        f"{secured_nats.prefix}.cmd.>",
        *commands,
        ">",
    ]
    nc, violations = await _connect(secured_nats, name)
    try:
        for subject in refused:
            await nc.subscribe(subject)
        await nc.subscribe(f"{inbox_prefix(name)}.mine")  # its own: allowed
        await nc.flush()
        await eventually(
            lambda: _current(violations.subjects),
            until=lambda _: violations.cover(refused),
            timeout_s=10,
            what=f"a subscription violation for everything {name} may not read",
        )
        assert not violations.include(f"{inbox_prefix(name)}.mine")
    finally:
        await nc.close()


async def test_without_credentials_the_server_refuses_the_connection(
    secured_nats: SecuredNats,
) -> None:
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(
            secured_nats.url, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=0
        )


@pytest.mark.parametrize(
    ("command", "forger"),
    [(BookShipment, "wms-bridge"), (RecordShipmentInOdoo, "carrier-router")],
)
async def test_a_forged_command_from_a_service_that_may_not_send_it_is_refused_and_not_stored(
    secured_nats: SecuredNats, command: type[BookShipment | RecordShipmentInOdoo], forger: str
) -> None:
    await provision_all(secured_nats)
    assert forger not in command.senders
    subject = secured_nats.subjects.subject_for(command)
    nc, violations = await _connect(secured_nats, forger)
    admin = await connect_as(secured_nats, ADMIN)
    try:
        with pytest.raises((asyncio.TimeoutError, NatsError)):
            # JetStream never sees it, so no ack comes.
            await nc.jetstream().publish(subject, b"{}", timeout=1.0)
        await eventually(
            lambda: _current(violations.subjects),
            until=lambda _: violations.include(subject),
            timeout_s=5,
            what="the server's permissions violation",
        )
        commands = secured_nats.subjects.commands_stream.name
        assert await stream_count(admin, commands, subject) == 0
        # The one service that may send it can.
        sender = await connect_as(secured_nats, command.senders[0].value)
        try:
            await sender.jetstream().publish(subject, b"{}", timeout=5.0)
        finally:
            await sender.close()
        assert await stream_count(admin, commands, subject) == 1
    finally:
        await nc.close()
        await admin.close()


@pytest.mark.parametrize("name", SERVICES)
async def test_a_service_can_use_each_of_its_buckets_fully_as_itself(
    secured_nats: SecuredNats, name: str
) -> None:
    await provision_all(secured_nats)
    declaration = load_services([name])[name].describe(subject_prefix=secured_nats.prefix)
    buckets = [b.bucket for b in declaration.buckets] + [secured_nats.subjects.kv_bucket("traces")]
    nc, violations = await _connect(secured_nats, name)
    try:
        for bucket in buckets:
            kv = await nc.jetstream().key_value(bucket)
            await kv.put("probe", b"1")
            entry = await kv.get("probe")
            assert entry.value == b"1"
            # keys(): an ordered consumer of the bucket's stream.
            listed = await eventually(
                functools.partial(_listed_keys, kv),
                until=lambda keys: "probe" in keys,
                what=f"{bucket} keys",
            )
            assert "probe" in listed
            await kv.delete("probe")
        await nc.flush()
        await asyncio.sleep(0.2)  # a refusal would have come by now
        assert violations.subjects == set()
    finally:
        await nc.close()
