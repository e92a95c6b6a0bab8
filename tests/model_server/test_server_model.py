"""Loading artifacts: digest pinning, skops trust, the pickle opt-in."""

from __future__ import annotations

import json
import tempfile
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


@pytest.mark.parametrize("suffix", ["\n", " ", "\r\n"])
def test_a_digest_with_anything_after_it_is_a_format_error(
    iris: tuple[Path, str], suffix: str
) -> None:
    with pytest.raises(ModelLoadError, match=r"model_digest: .* is not of the form"):
        load(str(iris[0]), iris[1] + suffix)


def test_loading_leaves_nothing_in_the_temporary_directory(
    iris: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    load(str(iris[0]), iris[1])  # a local artifact is read in place
    remote = fsspec.filesystem("memory")
    for file in iris[0].iterdir():
        remote.pipe(f"/leftovers/iris/{file.name}", file.read_bytes())
    try:
        assert load("memory://leftovers/iris", iris[1]).classes == [0, 1, 2]
        with pytest.raises(ModelLoadError):
            load("memory://leftovers/iris", "sha256:" + "0" * 64)
    finally:
        remote.rm("/leftovers", recursive=True)
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("s3:///models/iris", "an s3:// URI needs a bucket name"),
        ("pvc:///models/iris", "a pvc:// URI needs a claim name"),
        ("gs://models/iris", "unsupported model store URI"),
        ("s3://models/iris", "cannot read the store: NoCredentialsError"),
    ],
)
def test_a_store_that_cannot_be_read_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, uri: str, says: str
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ModelLoadError, match=says) as raised:
        load(uri, "sha256:" + "0" * 64)
    assert "\n" not in str(raised.value)
