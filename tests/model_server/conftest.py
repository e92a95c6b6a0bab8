"""Fixtures for the model server's tests: tiny models fitted into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_server.dataplane import DataPlane
from model_server.model import LoadedModel, load
from model_server.settings import ServerSettings
from model_server.testing import iris_artifact


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("iris") / "artifact"
    return directory, iris_artifact(directory)


@pytest.fixture(scope="session")
def iris_model(iris: tuple[Path, str]) -> LoadedModel:
    return load(str(iris[0]), iris[1])


@pytest.fixture
def iris_settings(iris: tuple[Path, str]) -> ServerSettings:
    return ServerSettings(model_uri=str(iris[0]), model_digest=iris[1], variant="canary")


@pytest.fixture
def iris_plane(iris_settings: ServerSettings, iris_model: LoadedModel) -> DataPlane:
    return DataPlane(iris_settings, iris_model)
