"""One training run, start to finish: the orchestration behind `mlops train`.

load data -> data report (and the data-quality gate) -> split -> build the pipeline ->
cross-validate or search, fit -> evaluate on the test set -> feature importance and feature
statistics -> quality gate -> compile to ONNX and check it on the test set -> publish the
artifact -> result. Every step is a function of
its own module; this one only sequences them and turns a failure into a result.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from mlops_operator.api.trainingjob import CompiledModel, TrainingJobSpec
from mlops_operator.api.workload import (
    DataSummary,
    ExitCode,
    GateFailure,
    PublishedModel,
    TrainingResult,
)
from model_server import compile as compile_module
from model_server.artifact import Feature, OnnxCheck
from trainer import data as data_module
from trainer import estimators, evaluate, gate, pipeline, publish, report, search, trust
from trainer.errors import (
    BadParamsError,
    EmptyDatasetError,
    EstimatorNotAllowedError,
    TrainerError,
)
from trainer.progress import Progress

RESULT_IMPORTANCE = 10
"""The result names this many most important features (metadata.json has them all)."""
LIBRARIES = (
    "scikit-learn",
    "skops",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "numpy",
    "pandas",
    "mlops-operator",
)


@dataclass(frozen=True)
class RunRequest:
    """What to train and where to publish it."""

    spec: TrainingJobSpec
    name: str
    namespace: str
    store: str
    version: str
    worker: int = 0
    """Which worker of a parallel search this process is (0 publishes)."""


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for library in LIBRARIES:
        try:
            versions[library] = importlib_metadata.version(library)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def split(
    data: data_module.Data, test_size: float, seed: int, stratify: bool
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    n_test = int(-(-len(data.frame) * test_size // 1))
    if len(data.frame) - n_test < 2 or n_test < 1:
        raise EmptyDatasetError(
            f"dataset: {len(data.frame)} rows are too few to hold out a test set "
            f"of {test_size:g} and still train"
        )
    strata = None
    if stratify and data.task == "classification":
        counts = data.target.value_counts()
        if counts.min() < 2:
            raise BadParamsError(
                f"split.stratify: class {counts.idxmin()!r} has a single row; stratification "
                "needs two per class (add data or set split.stratify: false)"
            )
        if n_test < len(counts):
            raise BadParamsError(
                f"split.testSize: a stratified test set of {n_test} rows cannot hold all "
                f"{len(counts)} classes; raise split.testSize or set split.stratify: false"
            )
        strata = data.target
    parts = train_test_split(
        data.frame, data.target, test_size=test_size, random_state=seed, stratify=strata
    )
    x_train, x_test, y_train, y_test = parts
    return x_train, x_test, y_train, y_test


def train(request: RunRequest, progress: Progress) -> TrainingResult:
    """Run the whole training; a TrainingResult either way (failures are results too)."""
    partial: dict[str, Any] = {}
    try:
        return _train(request, progress, partial)
    except TrainerError as error:
        return TrainingResult(
            phase="Failed",
            reason=error.reason,
            exit_code=int(error.code),
            message=error.message,
            name=request.name,
            namespace=request.namespace,
            duration_seconds=round(progress.elapsed(), 3),
            **partial,
        )


def _train(request: RunRequest, progress: Progress, partial: dict[str, Any]) -> TrainingResult:
    spec = request.spec
    seed = spec.split.seed
    source = spec.dataset.builtin or spec.dataset.uri
    progress(f"training {request.namespace}/{request.name} version {request.version}")

    cls = trust.resolve_estimator(spec)
    estimator = estimators.build(cls, spec.model.params, seed)
    _check_search(spec, cls)
    partial["estimator"] = spec.model.estimator

    data, data_report = _load(spec, cls, source, progress, partial)
    data_failures = gate.check_data(spec.quality_gate, data_report["missing"])
    if data_failures:
        return _gate_failed(request, progress, partial, data_failures)

    x_train, x_test, y_train, y_test = split(data, spec.split.test_size, seed, spec.split.stratify)
    model = pipeline.build(spec.preprocessing, data.numeric, data.categorical, estimator)
    fitted = _fit(
        request,
        model,
        cls,
        task=data.task,
        x=x_train,
        y=y_train,
        progress=progress,
        partial=partial,
    )
    if isinstance(fitted, search.WorkerDone):
        return _worker_done(request, progress, partial, fitted)
    partial["search"] = fitted.search
    for line in fitted.warnings:
        progress(line, level="warning")
    if fitted.best_params is not None:
        progress(f"best of {fitted.candidates} candidates: {fitted.best_params}")
    partial["best_params"] = fitted.best_params
    partial["cv_scoring"] = fitted.cv_scoring
    noted = [f"column {c!r} left out: {why}" for c, why in data.dropped_columns.items()]
    partial["warnings"] = [*noted, *data.notes, *fitted.warnings] or None

    progress(f"evaluating on {len(x_test)} held-out rows")
    evaluation = evaluate.evaluate(data.task, fitted.pipeline, x_test, y_test)
    metrics = {**evaluation.metrics, "cv_mean": fitted.cv_mean, "cv_std": fitted.cv_std}
    score = evaluate.headline(data.task, metrics)
    partial.update(metrics=metrics, score=score, confusion_matrix=evaluation.confusion_matrix)
    progress(f"{score} (cv {fitted.cv_scoring} {fitted.cv_mean:.3f} ± {fitted.cv_std:.3f})")

    importance = report.permutation_importance(fitted.pipeline, x_test, y_test, data.task, seed)
    partial["importance"] = {
        name: values["mean"] for name, values in list(importance.items())[:RESULT_IMPORTANCE]
    }
    stats = report.feature_stats(x_train, data.categorical)

    failures = gate.check_metrics(spec.quality_gate, metrics)
    if failures:
        return _gate_failed(request, progress, partial, failures)

    classes = (
        [evaluate.plain(c) for c in fitted.pipeline.classes_]
        if data.task == "classification"
        else None
    )
    features = [Feature(name=c, dtype=str(data.frame[c].dtype)) for c in data.frame.columns]
    compiled = compile_module.export(fitted.pipeline, features, x_test, data.task, classes)
    partial["onnx"] = compiled_summary(compiled.check)
    if compiled.model is not None:
        progress(
            f"compiled to ONNX ({len(compiled.model)} bytes): the same answers on "
            f"{compiled.check.rows} test rows"
        )
    else:
        progress(f"published without model.onnx: {compiled.check.reason}", level="warning")
    meta = trust.metadata(
        fitted.pipeline,
        x_test,
        seed,
        progress,
        partial,
        name=request.name,
        version=request.version,
        task=data.task,
        estimator=spec.model.estimator,
        target=data.target_name,
        features=features,
        classes=classes,
        metrics={k: None if math.isnan(v) else v for k, v in metrics.items()},
        params=_json_params(fitted.pipeline.named_steps[pipeline.MODEL_STEP].get_params()),
        best_params=fitted.best_params,
        versions=library_versions(),
        data_digest=data.digest,
        feature_stats=stats,
        onnx=compiled.check,
        namespace=request.namespace,
        confusionMatrix=evaluation.confusion_matrix,
        cvScoring=fitted.cv_scoring,
        cvScores=fitted.cv_scores,
        dataReport=data_report,
        importance=importance,
        spec=spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    )
    page = trust.report_page(meta, (x_test, y_test), fitted, progress)
    artifact = publish.Artifact(
        model=publish.serialize(fitted.pipeline),
        metadata=meta,
        onnx=compiled.model,
        extras={trust.REPORT_FILE: page} if page is not None else {},
    )
    uri, digest = _publish(request, artifact, progress, partial)
    trust.after_publish(
        request, meta, fitted, uri=uri, digest=digest, progress=progress, partial=partial
    )
    return TrainingResult(
        phase="Succeeded",
        reason="Trained",
        exit_code=int(ExitCode.OK),
        message=f"{score}; published version {request.version}",
        name=request.name,
        namespace=request.namespace,
        model=PublishedModel(uri=uri, digest=digest, version=request.version),
        duration_seconds=round(progress.elapsed(), 3),
        **partial,
    )


def _publish(
    request: RunRequest, artifact: publish.Artifact, progress: Progress, partial: dict[str, Any]
) -> tuple[str, str]:
    """The artifact (and its report) published as the request's version; its (uri, digest)."""
    target = publish.artifact_uri(request.store, request.namespace, request.name, request.version)
    progress(f"publishing to {target}")
    uri, digest = publish.publish(
        request.store,
        namespace=request.namespace,
        name=request.name,
        version=request.version,
        artifact=artifact,
    )
    progress(f"published {digest}")
    if trust.REPORT_FILE in artifact.extras:
        partial["report"] = f"{uri.rstrip('/')}/{trust.REPORT_FILE}"
        progress(f"report: {partial['report']}")
    return uri, digest


def _check_search(spec: TrainingJobSpec, cls: type) -> None:
    if spec.search:
        estimators.check_param_names(cls, list(spec.search.params), "search.params")
        estimators.check_param_names(cls, list(spec.search.ranges or {}), "search.ranges")
        search.check_scoring(spec.search.scoring or "accuracy")


def _fit(
    request: RunRequest,
    model: Any,
    cls: type,
    *,
    task: str,
    x: pd.DataFrame,
    y: pd.Series,
    progress: Progress,
    partial: dict[str, Any],
) -> search.Fitted | search.WorkerDone:
    """Cross-validate and fit, or search (this worker's part of it), or fit privately once."""
    spec, seed = request.spec, request.spec.split.seed
    if trust.private(spec):
        return trust.private_fit(spec, model, cls, x=x, y=y, progress=progress, partial=partial)
    how = f"{search.DEFAULT_CV}-fold cross-validation"
    if spec.search:
        how = f"{spec.search.strategy} search over {spec.search.cv} folds"
        if spec.search.parallelism > 1:
            how += f", worker {request.worker} of {spec.search.parallelism}"
    progress(f"fitting {cls.__name__} on {len(x)} rows ({how})")
    where = search.Where(
        request.store, request.namespace, request.name, request.version, request.worker
    )
    return search.fit(
        model, search=spec.search, task=task, seed=seed, x=x, y=y, where=where, report=progress
    )


def _worker_done(
    request: RunRequest, progress: Progress, partial: dict[str, Any], done: search.WorkerDone
) -> TrainingResult:
    """A search worker other than 0 finished its part: worker 0 refits and publishes."""
    status = done.search
    message = (
        f"search worker {done.worker} finished its part: {status.progress} trials of the study "
        "finished; worker 0 refits the best and publishes"
    )
    progress(message)
    return TrainingResult(
        phase="Succeeded",
        reason="Searched",
        exit_code=int(ExitCode.OK),
        message=message,
        name=request.name,
        namespace=request.namespace,
        search=status,
        warnings=done.warnings or None,
        duration_seconds=round(progress.elapsed(), 3),
        task=partial.get("task"),
        estimator=partial.get("estimator"),
    )


def compiled_summary(check: OnnxCheck) -> CompiledModel:
    """The result's (and so the status's) view of the ONNX check."""
    return CompiledModel(
        verified=check.verified,
        reason=check.reason,
        rows=check.rows,
        labels_equal=check.labels_equal,
        max_abs_diff=check.max_abs_diff,
        max_rel_diff=check.max_rel_diff,
        tolerance=check.tolerance,
    )


def _load(
    spec: TrainingJobSpec,
    cls: type,
    source: str | None,
    progress: Progress,
    partial: dict[str, Any],
) -> tuple[data_module.Data, dict[str, Any]]:
    """Load the data, check it fits the estimator, and report on it."""
    progress(f"loading dataset {source}")
    data = trust.load_protected(spec, progress)
    partial["task"] = data.task
    task_of_estimator = estimators.task_of(cls)
    if task_of_estimator and task_of_estimator != data.task:
        raise EstimatorNotAllowedError(
            f"estimator {spec.model.estimator} is for {task_of_estimator}, but the target "
            f"{data.target_name!r} makes this {data.task} (set dataset.task to override)"
        )
    if data.task == "classification" and data.target.nunique() < 2:
        raise EmptyDatasetError(
            f"dataset {source}: the target {data.target_name!r} has a single class"
        )
    data_report = report.data_report(data.frame, data.target, data.task)
    data_report["privacy"] = trust.scan(spec, data, progress, partial)
    if data.dropped_columns:
        data_report["droppedColumns"] = data.dropped_columns
    if data.notes:
        data_report["notes"] = data.notes
    for column, why in data.dropped_columns.items():
        progress(f"column {column!r} left out of the features: {why}", level="warning")
    for note in data.notes:
        progress(note, level="warning")
    partial["data"] = DataSummary(
        rows=data_report["rows"],
        duplicates=data_report["duplicates"],
        max_missing_fraction=data_report["maxMissingFraction"],
        class_balance=data_report.get("classBalance"),
        target_range=data_report.get("targetRange"),
    )
    progress(
        f"{data.task}: {len(data.frame)} rows, {len(data.numeric)} numeric and "
        f"{len(data.categorical)} categorical features, {data_report['duplicates']} duplicates, "
        f"max missing {data_report['maxMissingFraction']:.1%}"
        + (f", {data.dropped_rows} rows without a target dropped" if data.dropped_rows else "")
    )
    return data, data_report


def _gate_failed(
    request: RunRequest,
    progress: Progress,
    partial: dict[str, Any],
    failures: list[GateFailure],
) -> TrainingResult:
    message = gate.summary(failures) + "; the model was not published"
    return TrainingResult(
        phase="Failed",
        reason="QualityGateFailed",
        exit_code=int(ExitCode.QUALITY_GATE_FAILED),
        message=message,
        name=request.name,
        namespace=request.namespace,
        gate_failures=failures,
        duration_seconds=round(progress.elapsed(), 3),
        **partial,
    )


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Estimator params that are plain JSON values (nested estimators become their repr)."""
    plain: dict[str, Any] = {}
    for key, raw in sorted(params.items()):
        value = evaluate.plain(raw)
        if value is None or isinstance(value, str | int | float | bool):
            plain[key] = value
        elif isinstance(value, list | tuple) and all(
            isinstance(item, str | int | float | bool) for item in value
        ):
            plain[key] = list(value)
        else:
            plain[key] = repr(value)
    return plain
