"""The model artifact: the contract between the trainer, which writes it, and the model server.

An artifact is a directory ``<store>/<namespace>/<name>/<version>/`` holding:

- ``model.skops``: the fitted scikit-learn Pipeline, in the skops format (no arbitrary pickle);
- ``model.onnx`` (optional): the same Pipeline compiled by skl2onnx, written only when it
  converted and gave the same answers on the held-out test set (``metadata.json`` ``onnx``
  says how close, or why there is none: :class:`OnnxCheck`);
- ``metadata.json``: :class:`Metadata`, what the model is and what it was trained on;
- ``digest``: the artifact's digest, ``sha256:<64 hex>``, as computed by :func:`compute_digest`.

The digest covers the model files and the metadata, so none can be swapped, added or removed
alone. Whoever deploys a model pins the digest; the model server recomputes it and refuses a
mismatch.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODEL_FILE = "model.skops"
ONNX_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
DIGEST_FILE = "digest"
DIGESTED_FILES = (METADATA_FILE, MODEL_FILE)
OPTIONAL_DIGESTED_FILES = (ONNX_FILE,)
"""Digested when present: an artifact without them has the digest it always had."""
DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
"""Use with fullmatch: ``$`` would also match before a trailing newline."""
FORMAT = "mlops.dev/artifact/v1"


class DigestMismatchError(Exception):
    """The artifact's content does not match the digest it was pinned to."""


class NumericStats(BaseModel):
    """Training-set statistics of a numeric feature, the baseline for drift."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["numeric"] = "numeric"
    mean: float
    std: float
    missing: float = Field(description="Fraction of missing values in the training set.")
    bin_edges: list[float] = Field(
        alias="binEdges", description="Inner quantile edges; len(fractions) == len(edges) + 1."
    )
    fractions: list[float] = Field(description="Fraction of training rows in each bin.")


class CategoricalStats(BaseModel):
    """Training-set statistics of a categorical feature, the baseline for drift."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["categorical"] = "categorical"
    missing: float
    fractions: dict[str, float] = Field(description="Fraction of training rows per category.")


class Feature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    dtype: str = Field(description="The pandas dtype the model was trained on, e.g. float64.")


class OnnxCheck(BaseModel):
    """How model.onnx compares with model.skops on the held-out test set, or why it is absent."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    verified: bool = Field(
        description="True when model.onnx is in the artifact: it converted and every check held."
    )
    reason: str | None = Field(
        default=None, description="Why there is no model.onnx (conversion or check failure)."
    )
    rows: int = Field(default=0, description="Held-out test rows both runtimes predicted.")
    labels_equal: bool | None = Field(
        default=None, alias="labelsEqual", description="Classifiers: every predicted label equal."
    )
    max_abs_diff: float | None = Field(
        default=None,
        alias="maxAbsDiff",
        description="Largest |onnx - sklearn| over the probabilities (classifiers) or the "
        "predictions (regressors).",
    )
    max_rel_diff: float | None = Field(
        default=None,
        alias="maxRelDiff",
        description="Regressors: largest |onnx - sklearn| / max(1, |sklearn|).",
    )
    tolerance: float = Field(
        description="The bound the check kept: max_abs_diff for probabilities, max_rel_diff "
        "for regressors."
    )
    input_type: str | None = Field(
        default=None,
        alias="inputType",
        description="The ONNX type of numeric inputs: double, or float when a converter "
        "needs it (trees' regressors, imputers).",
    )
    opset: int | None = Field(default=None, description="The ONNX opset of the graph.")


class Metadata(BaseModel):
    """The content of metadata.json."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    format: str = FORMAT
    name: str
    version: str
    task: Literal["classification", "regression"]
    estimator: str
    target: str
    features: list[Feature]
    classes: list[Any] | None = Field(default=None, description="Class labels, classifiers only.")
    metrics: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    best_params: dict[str, Any] | None = Field(default=None, alias="bestParams")
    versions: dict[str, str] = Field(default_factory=dict, description="Library versions.")
    data_digest: str = Field(alias="dataDigest")
    feature_stats: dict[str, NumericStats | CategoricalStats] = Field(
        default_factory=dict, alias="featureStats"
    )
    onnx: OnnxCheck | None = Field(
        default=None, description="The compiled form's check; None for artifacts made before it."
    )


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def compute_digest(directory: Path) -> str:
    """The artifact's digest: sha256 over the name and sha256 of each digested file (the
    optional ones when present)."""
    hasher = hashlib.sha256()
    present = [name for name in OPTIONAL_DIGESTED_FILES if (directory / name).is_file()]
    for name in (*DIGESTED_FILES, *present):
        hasher.update(f"{name}\n{file_digest(directory / name)}\n".encode())
    return f"sha256:{hasher.hexdigest()}"


def verify(directory: Path, expected: str) -> None:
    """Raise DigestMismatchError unless the artifact in ``directory`` has digest ``expected``."""
    actual = compute_digest(directory)
    if actual != expected:
        raise DigestMismatchError(
            f"artifact {directory} has digest {actual}, but {expected} was pinned: "
            "the model or its metadata changed after training; refusing to load it"
        )


def read_metadata(directory: Path) -> Metadata:
    return Metadata.model_validate_json((directory / METADATA_FILE).read_bytes())
