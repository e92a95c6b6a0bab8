"""The TrainingJob resource: train, evaluate, gate and publish a scikit-learn model."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from mlops_operator.api.base import ApiModel, Rule, defaulted
from mlops_operator.api.common import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    DURATION_PATTERN,
    NAME_MAX,
    STORE_URI_FORMS,
    STORE_URI_PATTERN,
    Condition,
    ModelStatus,
    ObjectMeta,
    Resources,
    name_rules,
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
SEED_MAX = 2**32 - 1
"""numpy's random seeds are 32-bit."""
COLUMN_MAX = 256
PARAMS_MAX_BYTES = 32 * 1024
"""model.params and search.params as JSON: the spec travels in the training Pod's environment
and in the operator's annotation of the handled spec, so it must stay small."""
MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
DAYS = "sun|mon|tue|wed|thu|fri|sat"


def _cron_field(value: str) -> str:
    item = f"(\\*|({value})(-({value}))?)(/[1-9][0-9]*)?"
    return f"{item}(,{item})*"


CRON_FIELDS = (
    "[0-5]?[0-9]",
    "[01]?[0-9]|2[0-3]",
    "0?[1-9]|[12][0-9]|3[01]",
    f"0?[1-9]|1[0-2]|{MONTHS}",
    f"[0-7]|{DAYS}",
)
CRON_PATTERN = (
    "(?i)^(@(hourly|daily|weekly|monthly|yearly|annually|midnight)|"
    + " +".join(f"({_cron_field(value)})" for value in CRON_FIELDS)
    + ")$"
)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str))


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
    target: Annotated[str | None, Field(min_length=1, max_length=COLUMN_MAX)] = None
    """The column to predict; required with uri."""
    features: Annotated[
        list[Annotated[str, Field(max_length=COLUMN_MAX)]] | None,
        Field(min_length=1, max_length=10000),
    ] = None
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
    params: Annotated[dict[str, Any], Field(max_length=100)] = Field(default_factory=dict)
    """Constructor parameters, e.g. {n_estimators: 100, max_depth: 5} (at most 32 KiB as
    JSON)."""

    @field_validator("params")
    @classmethod
    def _small(cls, params: dict[str, Any]) -> dict[str, Any]:
        return _bounded(params)


def _bounded(params: dict[str, Any]) -> dict[str, Any]:
    size = _json_size(params)
    if size > PARAMS_MAX_BYTES:
        raise ValueError(
            f"{size // 1024} KiB as JSON, more than the {PARAMS_MAX_BYTES // 1024} KiB a "
            "training Pod's environment carries: pass large values in the dataset or a file"
        )
    return params


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
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] = 42
    """The random seed of the split, the search and the estimator (when it takes one)."""
    stratify: bool = True
    """Keep class proportions in both sets (classification only)."""


class ParamRange(ApiModel):
    """A range of values an estimator parameter may take (random and bayesian search)."""

    type: Literal["int", "float"]
    """int draws whole numbers, float real ones."""
    low: float
    """The smallest value."""
    high: float
    """The largest value (inclusive)."""
    log: bool = False
    """Draw uniformly on a log scale (log-uniform), e.g. for C or alpha; needs low > 0."""

    rules = (
        Rule(
            "self.low < self.high",
            "search.ranges: low must be less than high",
            lambda r: r.low < r.high,
            field_path=".low",
        ),
        Rule(
            "!self.log || self.low > 0.0",
            "search.ranges: a log-uniform range (log: true) needs low > 0",
            lambda r: not r.log or r.low > 0,
            field_path=".low",
        ),
        Rule(
            "self.type != 'int' || (double(int(self.low)) == self.low && "
            "double(int(self.high)) == self.high)",
            "search.ranges: an int range needs whole-number low and high",
            lambda r: r.type != "int" or (float(r.low).is_integer() and float(r.high).is_integer()),
            field_path=".type",
        ),
    )


MAX_SEARCH_PARAMS = 100


class Search(ApiModel):
    """Hyperparameter search with cross-validation (docs/search.md)."""

    strategy: Literal["grid", "random", "bayesian", "halving"] = "grid"
    """grid tries every combination; random samples nIter of them; bayesian lets Optuna's
    TPE sampler choose nTrials, pruning trials that fall behind; halving is scikit-learn's
    successive halving (every combination, or nIter sampled ones with ranges)."""
    params: Annotated[
        dict[str, Annotated[list[Any], Field(min_length=1)]],
        Field(min_length=1, max_length=MAX_SEARCH_PARAMS),
    ] = Field(default_factory=dict)
    """Candidate values per estimator parameter, e.g. {max_depth: [3, 5, 8]} (at most 32 KiB as
    JSON)."""
    ranges: Annotated[dict[str, ParamRange] | None, Field(max_length=MAX_SEARCH_PARAMS)] = None
    """Ranges per estimator parameter (random, bayesian and halving), e.g.
    {C: {type: float, low: 0.001, high: 100, log: true}}."""

    @field_validator("params")
    @classmethod
    def _small(cls, params: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return _bounded(params)

    cv: Annotated[int, Field(ge=2, le=20)] = 5
    """The number of cross-validation folds."""
    scoring: str | None = None
    """A scikit-learn scorer name, e.g. f1_macro; by default accuracy or r2."""
    n_iter: Annotated[int, Field(ge=1, le=1000)] = 10
    """Candidates sampled by random search (and by halving over ranges)."""
    n_trials: Annotated[int, Field(ge=1, le=10000)] = 20
    """Trials of bayesian search, across all workers."""
    timeout: Annotated[str | None, Field(pattern=DURATION_PATTERN)] = None
    """Bayesian search starts no trial after this long, e.g. 10m (finished trials count)."""
    pruning: bool = True
    """Bayesian search: stop a trial after a fold when its running score is below the median
    of earlier trials at that fold (Optuna's MedianPruner)."""
    parallelism: Annotated[int, Field(ge=1, le=64)] = 1
    """Workers sharing the search: an Indexed Job of this many Pods (processes locally),
    one study on the model store (file:// or pvc://); grid and random split their
    candidates by index, bayesian workers coordinate through the study."""

    rules = (
        Rule(
            "self.strategy != 'grid' || !has(self.ranges) || size(self.ranges) == 0",
            "search.ranges: grid search tries listed values only; list them in params, or use "
            "strategy random, bayesian or halving",
            lambda s: s.strategy != "grid" or not s.ranges,
            field_path=".ranges",
        ),
        Rule(
            "self.strategy != 'halving' || self.parallelism == 1",
            "search.parallelism: halving search runs in one Pod; use grid, random or bayesian "
            "to spread trials over Pods",
            lambda s: s.strategy != "halving" or s.parallelism == 1,
            field_path=".parallelism",
        ),
    )

    @model_validator(mode="after")
    def _space(self) -> Self:
        # Checked here, not in CEL: the API server's CEL cannot type params (values of any
        # JSON type), so a rule naming it does not compile. The operator rejects such a
        # TrainingJob with reason InvalidSpec; mlops validate and the local runner at once.
        if not self.params and not self.ranges:
            raise ValueError(
                "search: give candidate values in params or ranges for at least one parameter"
            )
        both = sorted(set(self.ranges or {}) & set(self.params))
        if both:
            raise ValueError(
                f"search.ranges: {', '.join(both)} is either listed in params or ranged, not both"
            )
        return self

    def planned_trials(self) -> int:
        """Trials the search plans: every combination (grid, halving over lists), nIter
        samples (random, halving over ranges; fewer when the lists hold fewer), nTrials."""
        if self.strategy == "bayesian":
            return self.n_trials
        combinations = math.prod(len(values) for values in self.params.values())
        if self.strategy == "grid" or (self.strategy == "halving" and not self.ranges):
            return combinations
        return self.n_iter if self.ranges else min(self.n_iter, combinations)


class SearchStatus(ApiModel):
    """Where a hyperparameter search stands: its trials and the best so far."""

    strategy: str
    """grid, random, bayesian or halving."""
    progress: str | None = None
    """Finished trials of those planned, e.g. 12/24 (kubectl get tj shows it)."""
    planned: int | None = None
    """Trials the search plans: the candidates of grid and random, nTrials of bayesian."""
    completed: int = 0
    """Trials that ran every fold."""
    pruned: int = 0
    """Bayesian trials stopped early, behind the others."""
    failed: int = 0
    """Trials whose fit failed, or whose Pod died (their candidate ran again)."""
    workers: int = 1
    """Pods (processes locally) sharing the search."""
    workers_done: int | None = None
    """Workers that finished their part."""
    best_trial: int | None = None
    """The number of the best trial in the study."""
    best_score: float | None = None
    """The best trial's mean cross-validation score."""
    best_params: dict[str, Any] | None = None
    """The best trial's estimator params."""
    seconds_per_trial: float | None = None
    """Mean wall time of a finished trial."""
    seconds: float | None = None
    """Wall time of the search (from the first trial to the last)."""


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

    uri: Annotated[str | None, Field(min_length=1, max_length=1024)] = None
    """The model store, e.g. pvc://mlops-models or s3://models; by default the operator's.
    Artifacts go to <uri>/<namespace>/<name>/<version>/."""
    secret_ref: Annotated[str | None, Field(max_length=253)] = None
    """A Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally
    AWS_ENDPOINT_URL for s3:// stores."""

    rules = (
        Rule(
            f"!has(self.uri) || self.uri.matches(r'{STORE_URI_PATTERN}')",
            f"output.uri: a model store, {STORE_URI_FORMS} (with a claim or bucket name)",
            lambda o: o.uri is None or re.fullmatch(STORE_URI_PATTERN, o.uri) is not None,
            field_path=".uri",
        ),
        Rule(
            f"!has(self.secretRef) || self.secretRef.matches(r'{DNS_SUBDOMAIN_PATTERN}')",
            "output.secretRef: the name of a Secret in the TrainingJob's namespace (lowercase "
            "letters, digits, '-' and '.'), e.g. s3-credentials",
            lambda o: (
                o.secret_ref is None
                or re.fullmatch(DNS_SUBDOMAIN_PATTERN, o.secret_ref) is not None
            ),
            field_path=".secretRef",
        ),
    )


class SecretKey(ApiModel):
    """One key of a Secret in the TrainingJob's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The Secret's name."""
    key: Annotated[str, Field(min_length=1, max_length=253)] = "salt"
    """The key holding the value."""


class DifferentialPrivacy(ApiModel):
    """Differentially private training with one of diffprivlib's estimators."""

    epsilon: Annotated[float, Field(gt=0, le=100)]
    """The privacy budget the estimator may spend (smaller: more private, noisier)."""
    delta: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """The budget's delta (0: pure epsilon-differential privacy)."""


class Privacy(ApiModel):
    """Protecting the people in the data: de-identification, a PII gate, differential privacy."""

    drop: list[str] | None = None
    """Columns removed as soon as the data is read: in no feature, report, log or artifact."""
    hash: list[str] | None = None
    """Columns replaced by a salted hash (HMAC-SHA256) of each value, as categorical features."""
    keep: list[str] | None = None
    """Columns declared fine: the PII scan reports them but never fails the run for them."""
    salt_secret_ref: SecretKey | None = None
    """The Secret key holding the hashing salt (required with hash in a cluster)."""
    pii_gate: Literal["off", "warn", "fail"] = "warn"
    """What a column that looks like personal data (e-mail, phone, card, national ID) does:
    nothing, a warning, or fail the run before training (PrivacyGateFailed)."""
    differential_privacy: DifferentialPrivacy | None = None
    """Train with a diffprivlib estimator (model.estimator: diffprivlib.models.*)."""


class Tracking(ApiModel):
    """Experiment tracking in MLflow."""

    uri: Annotated[str | None, Field(pattern=r"^(https?|file)://")] = None
    """The MLflow tracking server, e.g. http://mlflow.mlops:5000; by default the operator's."""
    experiment: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    """The experiment; by default <namespace>/<name>."""
    register_model: bool = True
    """Register the model as a version of the registered model <namespace>-<name>, with an
    alias naming the TrainingJob."""
    required: bool = False
    """Fail the run (TrackingFailed) when MLflow cannot be reached; by default a warning."""


class TrainingJobSpec(ApiModel):
    """What to train, how to judge it, and where to publish it."""

    dataset: Dataset
    model: ModelSpec
    preprocessing: Preprocessing = defaulted(Preprocessing)
    split: Split = defaulted(Split)
    search: Search | None = None
    quality_gate: QualityGate | None = None
    privacy: Privacy | None = None
    tracking: Tracking | None = None
    output: Output = defaulted(Output)
    resources: Resources | None = None
    backoff_limit: Annotated[int, Field(ge=0, le=10)] = 1
    """Retries of the training Pod before the job fails."""
    active_deadline_seconds: Annotated[int | None, Field(ge=1)] = None
    """The longest the training may run."""
    ttl_seconds_after_finished: Annotated[int | None, Field(ge=0)] = None
    """Delete the finished Job (not the TrainingJob or its model) after this long."""
    schedule: Annotated[str | None, Field(max_length=256)] = None
    """Retrain periodically (cron syntax, e.g. "0 3 * * *"): each run is a child TrainingJob."""
    concurrency_policy: Literal["Forbid", "Allow"] = "Forbid"
    """With a schedule: whether a run may start while the previous one is running."""
    successful_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """With a schedule: how many successful runs to keep."""
    failed_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 1
    """With a schedule: how many failed runs to keep."""

    rules = (
        Rule(
            f"!has(self.schedule) || self.schedule.matches(r'{CRON_PATTERN}')",
            "schedule: five cron fields within range (minute 0-59, hour 0-23, day of month "
            "1-31, month 1-12, day of week 0-7), or @hourly, @daily, @weekly, @monthly, "
            '@yearly; e.g. "0 3 * * *"',
            lambda s: s.schedule is None or re.fullmatch(CRON_PATTERN, s.schedule) is not None,
            field_path=".schedule",
        ),
    )


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
    search: SearchStatus | None = None
    """The hyperparameter search's trials and best candidate (with spec.search)."""
    privacy: dict[str, Any] | None = None
    """Differentially private runs: the budget spent ({epsilon, delta}) and the PII findings."""
    report: str | None = None
    """The run's HTML report, beside the artifact (mlops report prints or opens it)."""
    tracking: dict[str, Any] | None = None
    """The MLflow run, and the registered model version."""
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

    rules = name_rules(
        NAME_MAX, DNS_LABEL_PATTERN, "its Job and Pods carry it as a label, at most 63"
    )
