"""Fixtures of the deployment tests: the image's environment, the charts, the services' facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.charts import vendored_copy
from tests.deploy.hardening import ServiceFacts
from tests.deploy.image import ImageEnvironment, build_image_environment
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


@pytest.fixture(scope="session")
def image_environment(tmp_path_factory: pytest.TempPathFactory) -> ImageEnvironment:
    """The image's ``/opt/waybill`` made from the recipe's own commands and lock."""
    return build_image_environment(tmp_path_factory.mktemp("image"))
