"""The contract between the operator and the training Pod: both sides import this module.

- the environment `mlops train` reads (the operator's Job sets it);
- the exit codes it ends with (the Job's podFailurePolicy reads them);
- the result it writes as compact JSON (camelCase keys, at most :data:`MAX_BYTES`) to the
  container's termination-message path, which the TrainingJob controller reads back. The bound
  is kept by dropping detail (warnings, the confusion matrix, feature importance, ...) in a
  fixed order, never by cutting the JSON: the document always parses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from mlops_operator.api.trainingjob import CompiledModel, SearchStatus

SPEC_ENV = "MLOPS_TRAININGJOB_SPEC"
NAME_ENV = "MLOPS_TRAININGJOB_NAME"
NAMESPACE_ENV = "MLOPS_TRAININGJOB_NAMESPACE"
STORE_ENV = "MLOPS_MODEL_STORE"
VERSION_ENV = "MLOPS_MODEL_VERSION"
TERMINATION_LOG_ENV = "MLOPS_TERMINATION_LOG"
LOG_FORMAT_ENV = "MLOPS_LOG_FORMAT"
EXTRA_ESTIMATORS_ENV = "MLOPS_EXTRA_ESTIMATORS"
"""Estimator import paths allowed on top of scikit-learn's, comma-separated."""
WORKER_INDEX_ENV = "JOB_COMPLETION_INDEX"
"""Which worker of a parallel search this Pod is (0 refits and publishes); the Indexed Job's
controller sets it, the local runner passes ``--worker-index``."""
SALT_ENV = "MLOPS_PRIVACY_SALT"
"""The hashing salt (the Job sets it from privacy.saltSecretRef)."""
SALT_FILE_ENV = "MLOPS_PRIVACY_SALT_FILE"
"""Locally: a file holding the salt."""
TRACKING_URI_ENV = "MLOPS_TRACKING_URI"
"""The operator-wide MLflow tracking server, used when the spec names none."""
TERMINATION_LOG = "/dev/termination-log"
MAX_BYTES = 4096
"""The kubelet keeps at most 4096 bytes of a termination message."""
MESSAGE_LIMIT = 600


class ExitCode(IntEnum):
    """The exit codes of `mlops train` (documented in docs/trainer.md)."""

    OK = 0
    INTERNAL = 1
    INVALID_SPEC = 2
    DATA_UNREADABLE = 3
    DATA_MALFORMED = 4
    MISSING_COLUMN = 5
    EMPTY_DATASET = 6
    ESTIMATOR_NOT_ALLOWED = 7
    BAD_PARAMS = 8
    TRAINING_FAILED = 9
    QUALITY_GATE_FAILED = 10
    PUBLISH_FAILED = 11
    TERMINATED = 12
    INVALID_STORE = 13
    PRIVACY_GATE_FAILED = 14
    TRACKING_FAILED = 15
    STORE_UNREACHABLE = 16
    STORE_FULL = 17
    STORE_DENIED = 18


NON_RETRYABLE_EXIT_CODES = (
    ExitCode.INVALID_SPEC,
    ExitCode.DATA_MALFORMED,
    ExitCode.MISSING_COLUMN,
    ExitCode.EMPTY_DATASET,
    ExitCode.ESTIMATOR_NOT_ALLOWED,
    ExitCode.BAD_PARAMS,
    ExitCode.QUALITY_GATE_FAILED,
    ExitCode.INVALID_STORE,
    ExitCode.PRIVACY_GATE_FAILED,
    ExitCode.STORE_DENIED,
)
"""Exit codes no retry can fix: the Job's podFailurePolicy fails the Job at once instead of
spending its backoffLimit. (Unreadable data, a failed fit, a failed publish, a model store
unreachable or full, and internal errors may be passing trouble: they are retried.)"""
MODEL_STORE_FAULTS = (ExitCode.STORE_UNREACHABLE, ExitCode.STORE_FULL, ExitCode.STORE_DENIED)
"""The model store could not take the artifact (nothing was published): the TrainingJob's
Failed reason is the trainer's (ModelStoreUnreachable, ModelStoreFull, ModelStoreDenied) even
after its retries, since the store, not the training, needs fixing."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class GateFailure(_Model):
    """One bound a model (or its data) missed."""

    metric: str
    """The metric, or ``missing:<column>`` for the data-quality bound."""
    bound: Literal["min", "max"]
    threshold: float
    actual: float | None
    """None when the run did not produce the metric."""
    missed_by: float | None = None

    def describe(self) -> str:
        if self.actual is None:
            return f"{self.metric} was not measured (needed {self.bound} {self.threshold:g})"
        sign = "<" if self.bound == "min" else ">"
        return (
            f"{self.metric} {self.actual:.4g} {sign} {self.bound} {self.threshold:g} "
            f"(missed by {self.missed_by:.4g})"
        )


class PublishedModel(_Model):
    """A published model version: what status.model of the TrainingJob becomes."""

    uri: str
    """The artifact directory, e.g. pvc://mlops-models/default/iris/20261122-101500-a1b2."""
    digest: str
    """sha256:<64 hex> of the artifact (see model_server.artifact.compute_digest)."""
    version: str


class DataSummary(_Model):
    rows: int
    duplicates: int
    max_missing_fraction: float
    class_balance: dict[str, int] | None = None
    target_range: dict[str, float] | None = None


class TrainingResult(_Model):
    """The termination message of a training Pod."""

    phase: Literal["Succeeded", "Failed"]
    """Succeeded when a model was published; Failed otherwise (see reason)."""
    reason: str
    """One CamelCase word: Trained, QualityGateFailed, DataUnreadable, DataMalformed,
    MissingColumn, EmptyDataset, EstimatorNotAllowed, BadParams, InvalidSpec,
    TrainingFailed, PublishFailed, ModelStoreUnreachable, ModelStoreFull, ModelStoreDenied,
    Terminated, PrivacyGateFailed, TrackingFailed, InternalError."""
    exit_code: int
    """The process's exit code (docs/trainer.md has the table)."""
    message: str
    """One line for a person: what happened, or what failed and why."""
    name: str | None = None
    namespace: str | None = None
    task: Literal["classification", "regression"] | None = None
    estimator: str | None = None
    score: str | None = None
    """The headline metric, e.g. accuracy=0.967 or r2=0.41."""
    metrics: dict[str, float | None] = Field(default_factory=dict)
    """Test-set metrics (API names) plus cv_mean and cv_std; null when undefined."""
    cv_scoring: str | None = None
    """The scorer of cv_mean/cv_std and of the search."""
    best_params: dict[str, Any] | None = None
    """The search's best estimator params (only after a search)."""
    model: PublishedModel | None = None
    """The published artifact; absent when nothing was published."""
    onnx: CompiledModel | None = None
    """The compiled form's check (model.onnx), or why the artifact has none."""
    search: SearchStatus | None = None
    """The search's trials and best candidate (after a search)."""
    gate_failures: list[GateFailure] = Field(default_factory=list)
    """Each bound of the quality gate that was missed, with by how much."""
    data: DataSummary | None = None
    importance: dict[str, float | None] | None = None
    """Permutation importance (mean score drop) of the most important features."""
    confusion_matrix: dict[str, Any] | None = None
    """{labels, matrix}: rows are true classes, columns predicted ones."""
    warnings: list[str] | None = None
    """Warnings raised while fitting (e.g. ConvergenceWarning), deduplicated."""
    privacy: dict[str, Any] | None = None
    """The differential-privacy budget spent, and the PII findings (columns and kinds)."""
    report: str | None = None
    """The URI of the run's HTML report."""
    tracking: dict[str, Any] | None = None
    """The MLflow run id and the registered model version."""
    duration_seconds: float | None = None

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def to_termination_message(self, limit: int = MAX_BYTES) -> str:
        """Compact JSON of at most ``limit`` bytes, dropping detail until it fits."""
        candidate = self.model_copy(deep=True)
        candidate.metrics = {k: _round(v) for k, v in candidate.metrics.items()}
        if candidate.importance:
            candidate.importance = {k: _round(v) for k, v in candidate.importance.items()}
        if candidate.onnx is not None and candidate.onnx.reason:
            candidate.onnx = _lean_onnx(candidate.onnx, 300)
        if len(candidate.message) > MESSAGE_LIMIT:
            candidate.message = candidate.message[: MESSAGE_LIMIT - 1] + "…"
        steps: list[Callable[[TrainingResult], None]] = [
            lambda r: setattr(r, "warnings", r.warnings[:3] if r.warnings else None),
            lambda r: setattr(r, "warnings", None),
            lambda r: setattr(r, "privacy", _lean_privacy(r.privacy)),
            lambda r: setattr(r, "confusion_matrix", None),
            lambda r: setattr(r, "importance", _top(r.importance, 5)),
            lambda r: setattr(r, "data", _lean(r.data)),
            lambda r: setattr(r, "importance", None),
            lambda r: setattr(r, "best_params", _lean_params(r.best_params)),
            lambda r: _lean_search(r, drop_params=False),
            lambda r: setattr(r, "gate_failures", r.gate_failures[:5]),
            lambda r: setattr(r, "data", None),
            lambda r: setattr(r, "best_params", None),
            lambda r: _lean_search(r, drop_params=True),
            lambda r: setattr(r, "message", r.message[:200]),
            lambda r: setattr(r, "onnx", _lean_onnx(r.onnx, 80)),
        ]
        text = candidate.dump()
        for step in steps:
            if len(text.encode()) <= limit:
                return text
            step(candidate)
            text = candidate.dump()
        if len(text.encode()) <= limit:
            return text
        minimal = TrainingResult(
            phase=self.phase,
            reason=self.reason,
            exit_code=self.exit_code,
            message=self.message[:200],
            model=self.model,
            score=self.score,
            onnx=_lean_onnx(self.onnx, 0),
            search=self.search.model_copy(update={"best_params": None}) if self.search else None,
        )
        return minimal.dump()


def _lean_onnx(onnx: CompiledModel | None, reason: int) -> CompiledModel | None:
    """The check with its reason cut to ``reason`` characters (0: just whether it passed)."""
    if onnx is None:
        return None
    if reason == 0:
        return CompiledModel(verified=onnx.verified)
    lean = onnx.model_copy()
    if lean.reason and len(lean.reason) > reason:
        lean.reason = lean.reason[: reason - 1] + "…"
    return lean


def _lean_privacy(privacy: dict[str, Any] | None) -> dict[str, Any] | None:
    return {k: v for k, v in privacy.items() if k != "pii"} if privacy else None


def _round(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return float(f"{value:.6g}")


def _top(importance: dict[str, float | None] | None, count: int) -> dict[str, float | None] | None:
    return dict(list(importance.items())[:count]) if importance else None


def _lean(data: DataSummary | None) -> DataSummary | None:
    if data is None:
        return None
    lean = data.model_copy()
    if lean.class_balance and len(lean.class_balance) > 10:
        lean.class_balance = None
    return lean


def _lean_params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if len(repr(v)) <= 40}


def _lean_search(result: TrainingResult, *, drop_params: bool) -> None:
    if result.search is None or result.search.best_params is None:
        return
    params = None if drop_params else _lean_params(result.search.best_params)
    result.search = result.search.model_copy(update={"best_params": params})
