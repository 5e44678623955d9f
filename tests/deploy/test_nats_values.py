"""deploy/nats: values for the official NATS chart. The accounts and users are generated from
the services' declarations (`waybill nats permissions --helm`) and the committed file is
exactly that output; the hand-written values ask for what an R3 mesh needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.image import ROOT
from waybill_contracts import SubjectMap
from waybill_runtime.local.embedded_nats import NATS_SERVER_PACKAGE
from waybill_runtime.local.registry import load_services
from waybill_runtime.security.authorization import mesh_identities
from waybill_runtime.security.nats_chart import (
    SYSTEM_PASSWORD_VAR,
    USERS_SECRET,
    mesh_values,
    nkey_variable,
)
from waybill_runtime.testing.nats_cluster import load_values

NATS_VALUES = ROOT / "deploy" / "nats" / "values.yaml"
ACCOUNTS = ROOT / "deploy" / "nats" / "accounts.yaml"


def generated_accounts() -> str:
    return mesh_values(load_services().values(), "waybill")


def test_the_committed_accounts_are_what_the_generator_writes() -> None:
    assert ACCOUNTS.read_text() == generated_accounts(), (
        "deploy/nats/accounts.yaml is stale: waybill nats permissions --helm "
        "> deploy/nats/accounts.yaml"
    )


def test_the_command_prints_the_same_values() -> None:
    environment = {"PATH": "/usr/bin:/bin", "WAYBILL_SUBJECT_PREFIX": "waybill"}
    printed = subprocess.run(
        [sys.executable, "-m", "waybill_runtime", "nats", "permissions", "--helm"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=environment,
    )
    assert printed.stdout == generated_accounts()


def test_every_identity_is_a_user_whose_key_comes_from_the_secret() -> None:
    values: dict[str, Any] = yaml.safe_load(ACCOUNTS.read_text())
    declarations = [s.describe(subject_prefix="waybill") for s in load_services().values()]
    identities = mesh_identities(declarations, SubjectMap("waybill"))
    users = values["config"]["merge"]["accounts"]["WAYBILL"]["users"]
    assert [u["nkey"] for u in users] == [f"<< ${nkey_variable(i.name)} >>" for i in identities]
    for user, identity in zip(users, identities, strict=True):
        assert user["permissions"]["publish"]["allow"] == identity.permissions.publish
        assert user["permissions"]["subscribe"]["allow"] == identity.permissions.subscribe
    environment = values["container"]["env"]
    for variable in [nkey_variable(i.name) for i in identities] + [SYSTEM_PASSWORD_VAR]:
        reference = environment[variable]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": USERS_SECRET, "key": variable}


def test_the_values_ask_for_three_servers_file_storage_and_tls() -> None:
    values = load_values(NATS_VALUES, ACCOUNTS)
    config = values["config"]
    assert config["cluster"]["enabled"] is True and config["cluster"]["replicas"] == 3
    assert config["jetstream"]["enabled"] is True
    file_store = config["jetstream"]["fileStore"]
    assert file_store["enabled"] is True and file_store["pvc"]["enabled"] is True
    assert config["jetstream"]["memoryStore"]["enabled"] is False
    assert config["nats"]["tls"]["enabled"] is True and config["nats"]["tls"]["secretName"]
    assert config["cluster"]["tls"]["enabled"] is True and config["cluster"]["tls"]["ca"]
    assert values["tlsCA"]["enabled"] is True
    # One server release everywhere: the chart's image is the binary the tests run.
    release = NATS_SERVER_PACKAGE.split("==")[1]
    assert values["container"]["image"]["tag"] == f"{release}-alpine"
    # Both files' container.env survive Helm's merge.
    assert "GOMEMLIMIT" in values["container"]["env"]
    assert SYSTEM_PASSWORD_VAR in values["container"]["env"]


def test_the_values_say_how_streams_are_replicated() -> None:
    assert "WAYBILL_STREAM_REPLICAS=3" in NATS_VALUES.read_text()
    assert "WAYBILL_STREAM_REPLICAS=3" in (ROOT / "docs" / "deploy.md").read_text()


def test_waybill_nats_identities_writes_the_users_secret_once(tmp_path: Path) -> None:
    """Its output is the Secret waybill-nats-users as an env file: a public key per identity
    and the system user's password, which nats-server can read as a string (a value starting
    with a digit stops the server), the same on every run."""

    def run() -> dict[str, str]:
        command = ["nats", "identities", "--state-dir", str(tmp_path / "install")]
        printed = subprocess.run(
            [sys.executable, "-m", "waybill_runtime", *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={"PATH": "/usr/bin:/bin", "WAYBILL_SUBJECT_PREFIX": "waybill"},
        )
        return dict(line.split("=", 1) for line in printed.stdout.splitlines())

    first = run()
    declarations = [s.describe(subject_prefix="waybill") for s in load_services().values()]
    identities = mesh_identities(declarations, SubjectMap("waybill"))
    assert set(first) == {nkey_variable(i.name) for i in identities} | {SYSTEM_PASSWORD_VAR}
    assert all(first[nkey_variable(i.name)].startswith("U") for i in identities)
    assert first[SYSTEM_PASSWORD_VAR][0].isalpha() and len(first[SYSTEM_PASSWORD_VAR]) >= 32
    assert run() == first
