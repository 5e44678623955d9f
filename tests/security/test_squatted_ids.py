"""A predictable message id cannot be squatted to make JetStream drop a genuine fact.

JetStream drops a message whose ``Nats-Msg-Id`` it saw within the duplicate
window anywhere in the stream. A service allowed to publish *some* event (the
notifier) could publish garbage under the id of a fact another service is about
to observe; the ids of observed facts are therefore keyed with a secret of the
observing service (:mod:`waybill_runtime.security.fact_ids`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from waybill_contracts import Event, fact_id
from waybill_contracts.envelope import HEADER_NATS_MSG_ID
from waybill_contracts.examples import example_of
from waybill_runtime.bus.publisher import Publisher
from waybill_runtime.declaration import publishable_types
from waybill_runtime.security.fact_ids import fact_id_key
from waybill_runtime.security.permissions import ADMIN
from waybill_runtime.settings import RuntimeSettings, SettingsError, load_settings
from waybill_runtime.testing.secured import SecuredNats, connect_as, provision_all
from waybill_runtime.testing.streams import stream_count

OBSERVER, SQUATTER = "wms-bridge", "notifier"


def _settings(**values: object) -> RuntimeSettings:
    return load_settings(RuntimeSettings, environ={}, service=OBSERVER, **values)


def _first_event_of(service: str) -> type[Event]:
    events, _ = publishable_types(service)
    chosen = sorted(events, key=lambda t: t.__name__)[0]
    assert issubclass(chosen, Event)
    return chosen


async def _squat_then_observe(secured: SecuredNats, fact_key: bytes | None) -> int:
    """The squatter publishes first under the fact's plain id, then the observer publishes
    the fact; how many of the observer's events the stream holds."""
    await provision_all(secured)
    subjects = secured.subjects
    observed = _first_event_of(OBSERVER)
    fact = fact_id("wms", "WH/OUT/1", "shipped")
    squatter = await connect_as(secured, SQUATTER)
    observer = await connect_as(secured, OBSERVER)
    admin = await connect_as(secured, ADMIN)
    try:
        squat_subject = subjects.subject_for(_first_event_of(SQUATTER))
        ack = await squatter.jetstream().publish(
            squat_subject, b"garbage", headers={HEADER_NATS_MSG_ID: fact}
        )
        assert not ack.duplicate
        publisher = Publisher(observer, subjects, service=OBSERVER, fact_key=fact_key)
        await publisher.publish(example_of(observed), fact_id=fact)
        return await stream_count(
            admin, subjects.events_stream.name, subjects.subject_for(observed)
        )
    finally:
        for client in (squatter, observer, admin):
            await client.close()


async def test_a_squatted_fact_id_does_not_drop_the_genuine_fact(
    secured_nats: SecuredNats,
) -> None:
    seed = secured_nats.security.seed_file(OBSERVER)
    key = fact_id_key(_settings(nats_nkey_seed_file=str(seed)))
    assert key is not None
    assert await _squat_then_observe(secured_nats, key) == 1


async def test_without_a_key_the_squat_would_drop_it(secured_nats: SecuredNats) -> None:
    # What the key prevents: the same publish with a plain fact id is dropped.
    assert await _squat_then_observe(secured_nats, None) == 0


def test_the_key_is_the_services_own_and_the_same_for_every_replica(tmp_path: Path) -> None:
    from waybill_runtime.security.nkeys_store import ensure_users

    users = ensure_users(tmp_path, ["wms-bridge", "notifier"])
    own = fact_id_key(_settings(nats_nkey_seed_file=str(users["wms-bridge"].seed_file)))
    again = fact_id_key(_settings(nats_nkey_seed_file=str(users["wms-bridge"].seed_file)))
    other = fact_id_key(_settings(nats_nkey_seed_file=str(users["notifier"].seed_file)))
    assert own is not None and own == again and own != other
    # The seed itself is not the key.
    assert users["wms-bridge"].seed_file.read_bytes().strip() not in (own or b"")


def test_an_explicit_key_wins_and_no_identity_means_no_key(tmp_path: Path) -> None:
    seed_file = tmp_path / "s.nk"
    from waybill_runtime.security.nkeys_store import new_seed_file

    new_seed_file(seed_file)
    explicit = "a-secret-of-the-deployment-0123"
    settings = _settings(nats_nkey_seed_file=str(seed_file), fact_id_key=explicit)
    assert fact_id_key(settings) == explicit.encode()
    assert fact_id_key(_settings()) is None


def test_a_creds_file_keys_fact_ids_with_its_seed(tmp_path: Path) -> None:
    seed_file = tmp_path / "s.nk"
    from waybill_runtime.security.nkeys_store import new_seed_file

    new_seed_file(seed_file)
    seed = seed_file.read_text().strip()
    creds = tmp_path / "svc.creds"
    creds.write_text(
        "-----BEGIN NATS USER JWT-----\neyJhbGciOi.JWT.sig\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
    from_creds = fact_id_key(_settings(nats_credentials_file=str(creds)))
    from_seed = fact_id_key(_settings(nats_nkey_seed_file=str(seed_file)))
    assert from_creds is not None and from_creds == from_seed


@pytest.mark.parametrize("content", ["", "not a seed\n"], ids=["empty", "garbage"])
def test_an_identity_file_without_a_seed_is_named_with_what_to_do(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "bad.nk"
    path.write_text(content)
    with pytest.raises(SettingsError, match="WAYBILL_FACT_ID_KEY"):
        fact_id_key(_settings(nats_nkey_seed_file=str(path)))


def test_an_identity_file_gone_since_the_settings_were_read_is_named(tmp_path: Path) -> None:
    path = tmp_path / "gone.nk"
    path.write_text("x")
    settings = _settings(nats_nkey_seed_file=str(path))
    path.unlink()
    with pytest.raises(SettingsError, match=r"cannot read .*gone\.nk"):
        fact_id_key(settings)
