"""The TrainingJob resource: train, evaluate, gate and publish a scikit-learn model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from mlops_operator.api.base import ApiModel, Rule, defaulted
from mlops_operator.api.common import (
    Condition,
    ModelStatus,
    ObjectMeta,
    Resources,
)

BUILTIN_DATASETS = ("iris", "wine", "breast_cancer", "diabetes", "digits")
CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "precision_weighted",
    "recall_macro",
    "recall_weighted",
    "f1_macro",
    "f1_weighted",
    "roc_auc",
)
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")
GATE_METRICS = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS, "cv_mean", "cv_std")
ESTIMATOR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
CRON_PATTERN = r"^(@(hourly|daily|weekly|monthly|yearly)|(\S+\s+){4}\S+)$"

Task = Literal["classification", "regression"]


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


class Dataset(ApiModel):
    """Where the training data comes from: a built-in dataset, or a CSV/Parquet file."""

    builtin: Literal["iris", "wine", "breast_cancer", "diabetes", "digits"] | None = None
    """A dataset that ships with scikit-learn (nothing is downloaded)."""
    uri: Annotated[str | None, Field(min_length=1)] = None
    """A CSV or Parquet file: file://, pvc://<claim>/<path>, s3://, http(s)://."""
    format: Literal["csv", "parquet"] | None = None
    """The file format; by default from the uri's extension."""
    target: Annotated[str | None, Field(min_length=1)] = None
    """The column to predict; required with uri."""
    features: Annotated[list[str] | None, Field(min_length=1)] = None
    """The columns to learn from; by default every column but the target."""
    task: Task | None = None
    """classification or regression; by default inferred from the target."""

    rules = (
        Rule(
            "has(self.builtin) != has(self.uri)",
            "dataset: set exactly one of builtin or uri",
            lambda d: (d.builtin is None) != (d.uri is None),
        ),
        Rule(
            "!has(self.uri) || has(self.target)",
            "dataset.target: a dataset uri needs the name of its target column",
            lambda d: d.uri is None or d.target is not None,
            field_path=".target",
        ),
    )


class ModelSpec(ApiModel):
    """The estimator to fit."""

    estimator: Annotated[str, Field(pattern=ESTIMATOR_PATTERN, max_length=200)]
    """The estimator's import path, e.g. sklearn.ensemble.RandomForestClassifier; it must be
    on the operator's allow-list (scikit-learn's classifiers and regressors by default)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Constructor parameters, e.g. {n_estimators: 100, max_depth: 5}."""


class Imputation(ApiModel):
    """How missing values are filled."""

    numeric: Literal["mean", "median", "most_frequent", "constant"] = "median"
    """The fill value of numeric columns."""
    categorical: Literal["most_frequent", "constant"] = "most_frequent"
    """The fill value of categorical columns (constant: the string "missing")."""


class Preprocessing(ApiModel):
    """The steps before the estimator; they become part of the served Pipeline."""

    scaling: Literal["none", "standard", "minmax", "robust"] = "standard"
    """How numeric columns are scaled."""
    categorical: Literal["onehot", "ordinal"] = "onehot"
    """How categorical (string) columns are encoded."""
    categorical_columns: list[str] | None = None
    """Columns to treat as categorical; by default the non-numeric ones."""
    imputation: Imputation = defaulted(Imputation)
    """How missing values are filled."""


class Split(ApiModel):
    """How the data is split into training and held-out test sets."""

    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    """The fraction of rows held out for evaluation."""
    seed: Annotated[int, Field(ge=0)] = 42
    """The random seed of the split, the search and the estimator (when it takes one)."""
    stratify: bool = True
    """Keep class proportions in both sets (classification only)."""


class Search(ApiModel):
    """Hyperparameter search with cross-validation."""

    strategy: Literal["grid", "random"] = "grid"
    """grid tries every combination; random samples nIter of them."""
    params: Annotated[dict[str, list[Any]], Field(min_length=1)]
    """Candidate values per estimator parameter, e.g. {max_depth: [3, 5, 8]}."""
    cv: Annotated[int, Field(ge=2, le=20)] = 5
    """The number of cross-validation folds."""
    scoring: str | None = None
    """A scikit-learn scorer name, e.g. f1_macro; by default accuracy or r2."""
    n_iter: Annotated[int, Field(ge=1, le=1000)] = 10
    """Candidates sampled by random search."""


class QualityGate(ApiModel):
    """Thresholds a model must meet to be published."""

    min: Annotated[dict[str, float] | None, Field(max_length=len(GATE_METRICS))] = None
    """Lower bounds on test metrics, e.g. {accuracy: 0.9, f1_macro: 0.85}."""
    max: Annotated[dict[str, float] | None, Field(max_length=len(GATE_METRICS))] = None
    """Upper bounds on test metrics, e.g. {mse: 3000}."""
    max_missing_fraction: Annotated[float | None, Field(ge=0, le=1)] = None
    """The largest fraction of missing values allowed in any column of the data."""

    rules = (
        Rule(
            f"(!has(self.min) || self.min.all(m, m in {_cel_list(GATE_METRICS)})) && "
            f"(!has(self.max) || self.max.all(m, m in {_cel_list(GATE_METRICS)}))",
            "qualityGate: unknown metric; use one of " + ", ".join(GATE_METRICS),
            lambda g: set((g.min or {}) | (g.max or {})) <= set(GATE_METRICS),
        ),
    )


class Output(ApiModel):
    """Where the model is published."""

    uri: Annotated[str | None, Field(min_length=1)] = None
    """The model store, e.g. pvc://mlops-models or s3://models; by default the operator's.
    Artifacts go to <uri>/<namespace>/<name>/<version>/."""
    secret_ref: str | None = None
    """A Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally
    AWS_ENDPOINT_URL for s3:// stores."""


class TrainingJobSpec(ApiModel):
    """What to train, how to judge it, and where to publish it."""

    dataset: Dataset
    model: ModelSpec
    preprocessing: Preprocessing = defaulted(Preprocessing)
    split: Split = defaulted(Split)
    search: Search | None = None
    quality_gate: QualityGate | None = None
    output: Output = defaulted(Output)
    resources: Resources | None = None
    backoff_limit: Annotated[int, Field(ge=0, le=10)] = 1
    """Retries of the training Pod before the job fails."""
    active_deadline_seconds: Annotated[int | None, Field(ge=1)] = None
    """The longest the training may run."""
    ttl_seconds_after_finished: Annotated[int | None, Field(ge=0)] = None
    """Delete the finished Job (not the TrainingJob or its model) after this long."""
    schedule: Annotated[str | None, Field(pattern=CRON_PATTERN)] = None
    """Retrain periodically (cron syntax, e.g. "0 3 * * *"): each run is a child TrainingJob."""
    concurrency_policy: Literal["Forbid", "Allow"] = "Forbid"
    """With a schedule: whether a run may start while the previous one is running."""
    successful_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """With a schedule: how many successful runs to keep."""
    failed_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 1
    """With a schedule: how many failed runs to keep."""


class RunRef(ApiModel):
    """A run created by a scheduled TrainingJob."""

    name: str
    """The child TrainingJob's name."""
    phase: str
    """Its phase."""
    start_time: str | None = None
    """When it started (RFC 3339)."""


class CompiledModel(ApiModel):
    """The published model's compiled form (model.onnx), checked against it before publishing."""

    verified: bool
    """True when the artifact holds model.onnx: skl2onnx converted the Pipeline and on the
    held-out test set the labels were equal and the outputs within tolerance."""
    reason: str | None = None
    """Why the artifact has no model.onnx (the model is served by scikit-learn)."""
    rows: int | None = None
    """Held-out test rows both forms predicted."""
    labels_equal: bool | None = None
    """Classifiers: whether every predicted label was equal."""
    max_abs_diff: float | None = None
    """Largest difference of a class probability (classifiers) or a prediction (regressors)."""
    max_rel_diff: float | None = None
    """Regressors: the largest difference relative to max(1, |prediction|)."""
    tolerance: float | None = None
    """The bound the check kept (max_abs_diff for classifiers, max_rel_diff for regressors)."""


class TrainingJobStatus(ApiModel):
    """What happened, as observed by the operator."""

    phase: Literal["Pending", "Running", "Succeeded", "Failed"] | None = None
    """Pending, Running, Succeeded or Failed."""
    conditions: list[Condition] | None = None
    """The latest observations; kubectl wait --for=condition=Succeeded works."""
    start_time: str | None = None
    """When the training Pod started (RFC 3339)."""
    completion_time: str | None = None
    """When the training finished (RFC 3339)."""
    attempts: int | None = None
    """Training Pods started so far."""
    metrics: dict[str, Any] | None = None
    """Test-set metrics and cross-validation scores."""
    score: str | None = None
    """The headline metric, e.g. accuracy=0.967."""
    model: ModelStatus | None = None
    """The published model, once the quality gate passed."""
    onnx: CompiledModel | None = None
    """Whether the published model has a verified compiled form, and how close it came."""
    message: str | None = None
    """What happened last, for a person."""
    observed_generation: int | None = None
    """The spec generation the status describes."""
    last_schedule_time: str | None = None
    """With a schedule: when the last run was created."""
    runs: list[RunRef] | None = None
    """Scheduled runs still kept, newest first."""


class TrainingJob(ApiModel):
    """A TrainingJob manifest."""

    api_version: Literal["mlops.dev/v1alpha1"] = "mlops.dev/v1alpha1"
    kind: Literal["TrainingJob"] = "TrainingJob"
    metadata: ObjectMeta
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None
