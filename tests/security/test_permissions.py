"""The permissions generator and the seed store, without a server (the server tests are
in test_identities_on_server.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from waybill_contracts import SubjectMap
from waybill_contracts.events import PartnerCircuitChanged
from waybill_runtime.declaration import Declaration
from waybill_runtime.local.registry import load_services
from waybill_runtime.security.authorization import (
    authorization_json,
    mesh_identities,
    render_authorization,
)
from waybill_runtime.security.nkeys_store import SeedFileError, ensure_users, public_key_of
from waybill_runtime.security.permissions import (
    inbox_prefix,
    operator_identity,
    service_identity,
)

SUBJECTS = SubjectMap("acme")


@pytest.fixture(scope="module")
def declarations() -> list[Declaration]:
    return [s.describe(subject_prefix="acme") for s in load_services().values()]


def test_every_service_that_declares_partners_may_announce_its_breakers(
    declarations: list[Declaration],
) -> None:
    # The runtime announces the breakers of any service's partner calls: the contracts
    # must name each such service a publisher, or NATS would refuse the news.
    news = SUBJECTS.subject_for(PartnerCircuitChanged)
    with_partners = {d.name for d in declarations if d.partners}
    assert with_partners == {str(s) for s in PartnerCircuitChanged.publishers}
    for declaration in declarations:
        publish = set(service_identity(declaration, SUBJECTS).permissions.publish)
        may_announce = {news, f"{news}.express"} <= publish
        assert may_announce is bool(declaration.partners), declaration.name


def test_a_service_may_publish_exactly_the_messages_it_publishes_and_sends(
    declarations: list[Declaration],
) -> None:
    message_subjects = {channel.subject for channel in SUBJECTS.channels}
    for declaration in declarations:
        publish = set(service_identity(declaration, SUBJECTS).permissions.publish)
        declared = {m.subject for m in (*declaration.publishes, *declaration.sends)}
        assert publish & message_subjects == declared, declaration.name
        dead_letters = {s for s in publish if s.startswith("acme.dlq.")}
        if declaration.watches_mesh:
            # It writes the letter of a message nobody settled for the service that gave up.
            assert dead_letters == {SUBJECTS.dlq_subject(declaration.name), "acme.dlq.>"}
        else:
            assert dead_letters == {SUBJECTS.dlq_subject(declaration.name)}
        assert not any(s in (">", "acme.>", "$JS.API.>") for s in publish)
        # No stream or durable administration: `waybill provision` does that.
        assert not any(".STREAM.CREATE." in s or ".DURABLE.CREATE." in s for s in publish)


def test_a_service_reads_only_its_own_inbox_and_its_own_queries(
    declarations: list[Declaration],
) -> None:
    prefixes = {inbox_prefix(d.name) for d in declarations}
    assert len(prefixes) == len(declarations)
    for declaration in declarations:
        subscribe = service_identity(declaration, SUBJECTS).permissions.subscribe
        inboxes = [s for s in subscribe if s.startswith("_INBOX")]
        assert inboxes == [f"{inbox_prefix(declaration.name)}.>"]
        assert not any(s.startswith(("acme.cmd", "acme.evt", ">")) for s in subscribe)
        for query in declaration.queries:
            assert SUBJECTS.query_subject(declaration.name, query) in subscribe


def test_durable_and_bucket_rights_name_the_services_own_only(
    declarations: list[Declaration],
) -> None:
    for declaration in declarations:
        publish = service_identity(declaration, SUBJECTS).permissions.publish
        own_durables = {c.durable for c in declaration.consumes}
        if declaration.consumes_dead_letters:
            own_durables.add(SUBJECTS.durable(declaration.name, "dead-letters"))
        nexts = {s.rsplit(".", 1)[1] for s in publish if s.startswith("$JS.API.CONSUMER.MSG.NEXT.")}
        assert nexts == own_durables, declaration.name
        buckets = {s.split(".")[1] for s in publish if s.startswith("$KV.")}
        assert buckets == {b.bucket for b in declaration.buckets}
        traced = service_identity(declaration, SUBJECTS, tracing=True).permissions.publish
        assert f"$KV.{SUBJECTS.kv_bucket('traces')}.>" in traced


def test_the_operator_reads_and_replays_dead_letters_but_administers_nothing() -> None:
    publish = operator_identity(SUBJECTS).permissions.publish
    assert f"$JS.API.STREAM.MSG.DELETE.{SUBJECTS.dlq_stream.name}" in publish
    assert not any("STREAM.CREATE" in s or "STREAM.DELETE" in s or s == ">" for s in publish)


def test_seeds_are_private_kept_across_runs_and_named_in_the_authorization_block(
    tmp_path: Path, declarations: list[Declaration]
) -> None:
    folder = tmp_path / "identities"
    identities = mesh_identities(declarations, SUBJECTS)
    users = ensure_users(folder, [i.name for i in identities])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for user in users.values():
        assert stat.S_IMODE(user.seed_file.stat().st_mode) == 0o600
        assert user.public_key.startswith("U")
    again = ensure_users(folder, [i.name for i in identities])
    assert {n: u.public_key for n, u in again.items()} == {
        n: u.public_key for n, u in users.items()
    }
    block = render_authorization(identities, users)
    for user in users.values():
        assert f'nkey: "{user.public_key}"' in block
        assert user.seed_file.read_text().strip() not in block
    as_json = authorization_json(identities, users)
    assert [entry["name"] for entry in as_json] == [i.name for i in identities]


def test_a_file_without_a_seed_is_named_with_what_to_do(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nk"
    bad.write_text("not a seed")
    with pytest.raises(SeedFileError, match=r"bad.nk holds no valid nkey seed.*delete it"):
        public_key_of(bad)
    with pytest.raises(SeedFileError, match="cannot read the nkey seed"):
        public_key_of(tmp_path / "missing.nk")
