"""Loading a verified artifact into a model the data plane can call."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_server import artifact, store
from model_server.errors import ModelLoadError

log = logging.getLogger(__name__)

PICKLE_FILES = ("model.joblib", "model.pkl")
# Types outside skops' default trust list that an sklearn Pipeline legitimately contains.
TRUSTED_PREFIXES = ("sklearn.", "numpy.")


def trusted_types(untrusted: list[str]) -> list[str]:
    """The skops types to trust: those from sklearn and numpy; raise if any other remains."""
    refused = [name for name in untrusted if not name.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ModelLoadError(
            "model.skops contains types that are neither scikit-learn's nor numpy's and will "
            f"not be trusted: {', '.join(sorted(refused))}"
        )
    return untrusted


def pickle_digest(directory: Path, model_file: str) -> str:
    """The artifact digest over metadata.json and a pickle model file (same scheme)."""
    hasher = hashlib.sha256()
    for name in (artifact.METADATA_FILE, model_file):
        hasher.update(f"{name}\n{artifact.file_digest(directory / name)}\n".encode())
    return f"sha256:{hasher.hexdigest()}"


@dataclass
class LoadedModel:
    """A fitted estimator with its metadata: what the data plane predicts with."""

    estimator: Any
    metadata: artifact.Metadata
    name: str
    digest: str
    feature_names: list[str] = field(init=False)
    feature_dtypes: list[np.dtype[Any]] = field(init=False)
    classes: list[Any] | None = field(init=False)
    has_proba: bool = field(init=False)

    def __post_init__(self) -> None:
        self.feature_names = [f.name for f in self.metadata.features]
        self.feature_dtypes = [_pandas_dtype(f.dtype) for f in self.metadata.features]
        classes = getattr(self.estimator, "classes_", None)
        if self.metadata.task == "classification":
            self.classes = (
                np.asarray(classes).tolist() if classes is not None else self.metadata.classes
            )
        else:
            self.classes = None
        self.has_proba = self.classes is not None and hasattr(self.estimator, "predict_proba")

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def is_classifier(self) -> bool:
        return self.metadata.task == "classification"

    def frame(self, columns: list[np.ndarray[Any, Any]]) -> pd.DataFrame:
        return pd.DataFrame(dict(zip(self.feature_names, columns, strict=True)), copy=False)

    def predict(
        self, columns: list[np.ndarray[Any, Any]], proba: bool
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        frame = self.frame(columns)
        predictions = np.asarray(self.estimator.predict(frame))
        probabilities = np.asarray(self.estimator.predict_proba(frame)) if proba else None
        return predictions, probabilities


def _pandas_dtype(name: str) -> np.dtype[Any]:
    try:
        dtype = pd.api.types.pandas_dtype(name)
    except TypeError:
        return np.dtype(object)
    return dtype if isinstance(dtype, np.dtype) else np.dtype(object)


def load(
    uri: str, digest: str, *, name: str | None = None, allow_pickle: bool = False
) -> LoadedModel:
    """Fetch, verify and load the artifact at ``uri``.

    Raise ModelLoadError when it must not be served (missing, digest mismatch, untrusted types).
    """
    if not artifact.DIGEST_PATTERN.match(digest):
        raise ModelLoadError(f"the pinned digest {digest!r} is not of the form sha256:<64 hex>")
    try:
        directory = store.fetch_directory(uri, Path(tempfile.mkdtemp(prefix="mlops-model-")))
    except store.StoreError as error:
        raise ModelLoadError(f"cannot fetch the model: {error}") from error
    if not (directory / artifact.METADATA_FILE).is_file():
        raise ModelLoadError(f"{uri}: no {artifact.METADATA_FILE} in the artifact")
    if (directory / artifact.MODEL_FILE).is_file():
        try:
            artifact.verify(directory, digest)
        except artifact.DigestMismatchError as error:
            raise ModelLoadError(str(error)) from error
        estimator = _load_skops(directory / artifact.MODEL_FILE)
    else:
        estimator = _load_pickle(directory, digest, allow_pickle, uri)
    try:
        metadata = artifact.read_metadata(directory)
    except ValueError as error:
        raise ModelLoadError(f"{uri}: invalid {artifact.METADATA_FILE}: {error}") from error
    model = LoadedModel(estimator, metadata, name or metadata.name, digest)
    log.info(
        "loaded model %s version %s (%s, %d features) digest %s",
        model.name,
        model.version,
        metadata.estimator,
        len(model.feature_names),
        digest,
    )
    return model


def _load_skops(path: Path) -> Any:
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=path)
        return skops.io.load(path, trusted=trusted_types(list(untrusted)))
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelLoadError(f"cannot load {path}: {error}") from error


def _load_pickle(directory: Path, digest: str, allow_pickle: bool, uri: str) -> Any:
    found = [name for name in PICKLE_FILES if (directory / name).is_file()]
    if not found:
        raise ModelLoadError(f"{uri}: no {artifact.MODEL_FILE} in the artifact")
    if not allow_pickle:
        raise ModelLoadError(
            f"{uri}: the artifact holds {found[0]}, a pickle, which can run arbitrary code when "
            "loaded; serve it only if you trust it, with --allow-pickle (MLOPS_ALLOW_PICKLE=true)"
        )
    actual = pickle_digest(directory, found[0])
    if actual != digest:
        raise ModelLoadError(
            f"artifact {directory} has digest {actual}, but {digest} was pinned: the model or "
            "its metadata changed after training; refusing to load it"
        )
    import joblib

    log.warning("loading the pickle %s (opted in with allow_pickle)", found[0])
    try:
        return joblib.load(directory / found[0])
    except Exception as error:
        raise ModelLoadError(f"cannot load {found[0]}: {error}") from error
