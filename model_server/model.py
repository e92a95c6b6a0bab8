"""Loading a verified artifact into a model the data plane can call."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_server import artifact, runtimes, store
from model_server.errors import ModelLoadError

log = logging.getLogger(__name__)

PICKLE_FILES = ("model.joblib", "model.pkl")
RUNTIMES = ("auto", "onnx", "sklearn")
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
    """A model ready to predict, with its metadata: what the data plane calls."""

    runtime: runtimes.Runtime
    metadata: artifact.Metadata
    name: str
    digest: str
    feature_names: list[str] = field(init=False)
    feature_dtypes: list[np.dtype[Any]] = field(init=False)
    classes: list[Any] | None = field(init=False)
    has_proba: bool = field(init=False)
    explainer: Any = None
    """A :class:`model_server.explain.Explainer` when explanations are on."""

    def __post_init__(self) -> None:
        self.feature_names = [f.name for f in self.metadata.features]
        self.feature_dtypes = [_pandas_dtype(f.dtype) for f in self.metadata.features]
        if self.metadata.task == "classification":
            fitted = getattr(self.runtime, "classes", None)
            self.classes = fitted if fitted is not None else self.metadata.classes
        else:
            self.classes = None
        self.has_proba = self.classes is not None and self.runtime.has_proba

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def is_classifier(self) -> bool:
        return self.metadata.task == "classification"

    @property
    def runtime_name(self) -> str:
        return self.runtime.name

    def predict(
        self, columns: list[np.ndarray[Any, Any]], proba: bool
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        return self.runtime.predict(columns, proba)


def _pandas_dtype(name: str) -> np.dtype[Any]:
    try:
        dtype = pd.api.types.pandas_dtype(name)
    except TypeError:
        return np.dtype(object)
    return dtype if isinstance(dtype, np.dtype) else np.dtype(object)


@dataclass(frozen=True)
class RuntimeOptions:
    """Which runtime serves (``auto``: ONNX when the artifact has a verified model.onnx)."""

    runtime: str = "auto"
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    explain: bool = False
    """Also build an explainer (on the scikit-learn Pipeline, loaded even when onnx serves)."""
    explain_samples: int = 200


def load(
    uri: str,
    digest: str,
    *,
    name: str | None = None,
    allow_pickle: bool = False,
    options: RuntimeOptions | None = None,
) -> LoadedModel:
    """Fetch, verify and load the artifact at ``uri``.

    Raise ModelLoadError when it must not be served (missing, digest mismatch, untrusted types,
    ``runtime="onnx"`` without a verified model.onnx).
    """
    options = options or RuntimeOptions()
    if options.runtime not in RUNTIMES:
        raise ModelLoadError(f"unknown runtime {options.runtime!r}; one of {list(RUNTIMES)}")
    if not artifact.DIGEST_PATTERN.fullmatch(digest):
        raise ModelLoadError(
            f"model_digest: the pinned digest {digest!r} is not of the form sha256:<64 hex>"
        )
    with contextlib.ExitStack() as scratch:
        # A remote artifact is copied to a scratch directory that goes once it is in memory;
        # a local one is read where it is.
        destination = None
        try:
            if store.local_path(uri) is None:
                destination = Path(
                    scratch.enter_context(tempfile.TemporaryDirectory(prefix="mlops-model-"))
                )
            directory = store.fetch_directory(uri, destination)
        except store.StoreError as error:
            raise ModelLoadError(f"cannot fetch the model: {error}") from error
        return _load_from(
            directory, uri, digest, name=name, allow_pickle=allow_pickle, options=options
        )


def _load_from(
    directory: Path,
    uri: str,
    digest: str,
    *,
    name: str | None,
    allow_pickle: bool,
    options: RuntimeOptions,
) -> LoadedModel:
    if not (directory / artifact.METADATA_FILE).is_file():
        raise ModelLoadError(f"{uri}: no {artifact.METADATA_FILE} in the artifact")
    skops_file = (directory / artifact.MODEL_FILE).is_file()
    if skops_file:
        try:
            artifact.verify(directory, digest)
        except artifact.DigestMismatchError as error:
            raise ModelLoadError(str(error)) from error
    else:
        estimator = _load_pickle(directory, digest, allow_pickle, uri)
    try:
        metadata = artifact.read_metadata(directory)
    except ValueError as error:
        raise ModelLoadError(f"{uri}: invalid {artifact.METADATA_FILE}: {error}") from error
    if skops_file:
        runtime, estimator = _skops_runtime(directory, metadata, options, uri)
    elif options.runtime == "onnx":  # a pickle's digest does not cover model.onnx
        raise ModelLoadError(f"{uri}: --runtime onnx needs a model.skops artifact")
    else:
        runtime = runtimes.SklearnRuntime(estimator, [f.name for f in metadata.features])
    model = LoadedModel(runtime, metadata, name or metadata.name, digest)
    if options.explain:
        model.explainer = _explainer(estimator, metadata, options.explain_samples, uri)
    log.info(
        "loaded model %s version %s (%s, %d features) digest %s, runtime %s",
        model.name,
        model.version,
        metadata.estimator,
        len(model.feature_names),
        digest,
        runtime.name,
    )
    return model


def _skops_runtime(
    directory: Path, metadata: artifact.Metadata, options: RuntimeOptions, uri: str
) -> tuple[runtimes.Runtime, Any]:
    """The runtime of a skops artifact, and the Pipeline when it is loaded (sklearn, explain).

    With onnx serving and explanations on, the Pipeline is loaded too: onnx predicts, the
    Pipeline explains."""
    if _use_onnx(directory, metadata, options.runtime, uri):
        runtime = _load_onnx(directory / artifact.ONNX_FILE, metadata, options)
        estimator = _load_skops(directory / artifact.MODEL_FILE) if options.explain else None
        return runtime, estimator
    estimator = _load_skops(directory / artifact.MODEL_FILE)
    return runtimes.SklearnRuntime(estimator, [f.name for f in metadata.features]), estimator


def _explainer(estimator: Any, metadata: artifact.Metadata, samples: int, uri: str) -> Any:
    from model_server.explain import Explainer, ExplainError

    try:
        return Explainer(estimator, metadata, samples=samples)
    except ExplainError as error:
        raise ModelLoadError(f"{uri}: --explain: {error}") from error


def _use_onnx(directory: Path, metadata: artifact.Metadata, runtime: str, uri: str) -> bool:
    """Whether to serve model.onnx: auto when present and verified, onnx or refuse."""
    present = (directory / artifact.ONNX_FILE).is_file()
    verified = present and metadata.onnx is not None and metadata.onnx.verified
    if runtime == "onnx" and not verified:
        why = (
            metadata.onnx.reason
            if metadata.onnx is not None and metadata.onnx.reason
            else "the artifact predates compiled models"
            if metadata.onnx is None
            else "its check did not pass"
        )
        what = "an unverified" if present else "no"
        raise ModelLoadError(
            f"{uri}: --runtime onnx, but the artifact has {what} {artifact.ONNX_FILE} ({why}); "
            "serve it with --runtime auto or sklearn"
        )
    return runtime != "sklearn" and verified


def _load_onnx(
    path: Path, metadata: artifact.Metadata, options: RuntimeOptions
) -> runtimes.OnnxRuntime:
    classes = metadata.classes if metadata.task == "classification" else None
    try:
        return runtimes.OnnxRuntime(
            path.read_bytes(),
            len(metadata.features),
            classes,
            intra_op_threads=options.intra_op_threads,
            inter_op_threads=options.inter_op_threads,
        )
    except Exception as error:
        raise ModelLoadError(f"cannot load {path}: {error}") from error


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
