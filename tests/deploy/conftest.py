"""Fixtures of the deployment tests: the image's environment, the charts, the services' facts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.charts import vendored_copy
from tests.deploy.hardening import ServiceFacts
from tests.deploy.image import ImageEnvironment, build_image_environment
from tests.deploy.test_nats_values import ACCOUNTS, NATS_VALUES
from waybill_contracts import SubjectMap
from waybill_runtime.deploy import declared_values
from waybill_runtime.local.registry import load_services
from waybill_runtime.security.authorization import mesh_identities
from waybill_runtime.security.nats_chart import (
    SYSTEM_PASSWORD_VAR,
    USERS_SECRET,
    nkey_variable,
    system_password,
)
from waybill_runtime.security.nkeys_store import NkeyUser, ensure_users
from waybill_runtime.testing.nats_cluster import LocalNatsCluster
from waybill_runtime.testing.nats_cluster import load_values as nats_values


@pytest.fixture(scope="session")
def charts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """helm/ copied with waybill-lib vendored into every chart (as `helm dependency update`)."""
    return vendored_copy(tmp_path_factory.mktemp("charts"))


@pytest.fixture(scope="session")
def service_facts() -> dict[str, ServiceFacts]:
    facts = {}
    for name, service in load_services().items():
        declared = declared_values(service)
        facts[name] = ServiceFacts(
            ingress=declared.ingress,
            partners=len(declared.partners),
            shutdown_deadline_s=declared.shutdown_deadline_s,
        )
    return facts


@pytest.fixture(scope="session")
def image_environment(tmp_path_factory: pytest.TempPathFactory) -> ImageEnvironment:
    """The image's ``/opt/waybill`` made from the recipe's own commands and lock."""
    return build_image_environment(tmp_path_factory.mktemp("image"))


# deploy/nats/accounts.yaml is generated for this prefix (production.yaml's too).
CLUSTER_PREFIX = "waybill"


@pytest.fixture
def identities(tmp_path: Path) -> dict[str, NkeyUser]:
    """A seed per identity, as `waybill nats identities` makes them for an installation."""
    declarations = [s.describe(subject_prefix=CLUSTER_PREFIX) for s in load_services().values()]
    names = [i.name for i in mesh_identities(declarations, SubjectMap(CLUSTER_PREFIX))]
    return ensure_users(tmp_path / "identities", names)


@pytest.fixture
def cluster(tmp_path: Path, identities: dict[str, NkeyUser]) -> Iterator[LocalNatsCluster]:
    """Three nats-servers as the official chart runs them with deploy/nats's values, started."""
    users_secret = {nkey_variable(n): u.public_key for n, u in identities.items()}
    users_secret[SYSTEM_PASSWORD_VAR] = system_password(tmp_path / "identities")
    local = LocalNatsCluster(
        nats_values(NATS_VALUES, ACCOUNTS), tmp_path / "cluster", {USERS_SECRET: users_secret}
    )
    with local:
        yield local
