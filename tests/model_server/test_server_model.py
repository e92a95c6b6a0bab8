"""Loading artifacts: digest pinning, skops trust, the pickle opt-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from model_server import artifact
from model_server.errors import ModelLoadError
from model_server.model import load, trusted_types
from model_server.testing import write_artifact


def test_loads_a_verified_artifact(iris: tuple[Path, str]) -> None:
    model = load(f"file://{iris[0]}", iris[1], name="flowers")
    assert model.name == "flowers"
    assert model.classes == [0, 1, 2]
    assert model.has_proba


def test_refuses_a_digest_mismatch(iris: tuple[Path, str]) -> None:
    with pytest.raises(ModelLoadError, match="refusing to load it"):
        load(str(iris[0]), "sha256:" + "0" * 64)


def test_refuses_changed_metadata(tmp_path: Path) -> None:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    digest = write_artifact(tmp_path, DecisionTreeClassifier(), frame, target)
    metadata = json.loads((tmp_path / artifact.METADATA_FILE).read_text())
    metadata["version"] = "2"
    (tmp_path / artifact.METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError, match="digest"):
        load(str(tmp_path), digest)


def test_refuses_a_malformed_digest(iris: tuple[Path, str]) -> None:
    with pytest.raises(ModelLoadError, match="sha256:<64 hex>"):
        load(str(iris[0]), "md5:1234")


def test_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such artifact"):
        load(str(tmp_path / "nope"), "sha256:" + "0" * 64)


def test_pickle_only_with_opt_in(tmp_path: Path) -> None:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    digest = write_artifact(tmp_path, DecisionTreeClassifier(), frame, target, pickle=True)
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        load(str(tmp_path), digest)
    assert load(str(tmp_path), digest, allow_pickle=True).classes == [0, 1, 2]
    with pytest.raises(ModelLoadError, match="refusing"):
        load(str(tmp_path), "sha256:" + "1" * 64, allow_pickle=True)


def test_only_sklearn_and_numpy_types_are_trusted() -> None:
    assert trusted_types(["sklearn.tree._tree.Tree", "numpy.dtype"]) == [
        "sklearn.tree._tree.Tree",
        "numpy.dtype",
    ]
    with pytest.raises(ModelLoadError, match=r"builtins\.eval, evil\.Thing"):
        trusted_types(["sklearn.tree._tree.Tree", "evil.Thing", "builtins.eval"])
