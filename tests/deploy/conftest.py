"""Fixtures of the chart tests: the charts vendored once per session, the services' facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.charts import vendored_copy
from tests.deploy.hardening import ServiceFacts
from waybill_runtime.deploy import declared_values
from waybill_runtime.local.registry import load_services


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
