"""Fixtures of the deployment tests: the image's environment, built once per session."""

from __future__ import annotations

import pytest

from tests.deploy.image import ImageEnvironment, build_image_environment


@pytest.fixture(scope="session")
def image_environment(tmp_path_factory: pytest.TempPathFactory) -> ImageEnvironment:
    """The image's ``/opt/waybill`` made from the recipe's own commands and lock."""
    return build_image_environment(tmp_path_factory.mktemp("image"))
