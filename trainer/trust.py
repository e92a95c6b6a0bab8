"""The run's trust steps, as :mod:`trainer.run` calls them: protect and scan the data, fit
with differential privacy, write the HTML report, track in MLflow.

Each step is one function over the pure modules (:mod:`trainer.privacy`, :mod:`trainer.dp`,
:mod:`trainer.htmlreport`, :mod:`trainer.tracking`); what it learns goes into ``partial``, the
result being built.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from mlops_operator.api.trainingjob import Privacy, TrainingJobSpec
from mlops_operator.api.workload import TRACKING_URI_ENV
from model_server.artifact import Metadata
from trainer import data as data_module
from trainer import dp, privacy, search
from trainer.errors import BadParamsError, PrivacyGateFailedError, TrackingFailedError
from trainer.progress import Progress

REPORT_FILE = "report.html"


def resolve_estimator(spec: TrainingJobSpec) -> type:
    """The estimator class: diffprivlib's allow-list with differential privacy."""
    from trainer import estimators

    if not (spec.privacy and spec.privacy.differential_privacy):
        return estimators.resolve(spec.model.estimator)
    if spec.search:
        raise BadParamsError(
            "privacy.differentialPrivacy: a search fits every candidate on the same rows and "
            "would spend the privacy budget again each time; remove spec.search"
        )
    return dp.resolve(spec.model.estimator)


def private(spec: TrainingJobSpec) -> bool:
    return bool(spec.privacy and spec.privacy.differential_privacy)


def after_publish(
    request: Any,
    meta: Metadata,
    fitted: search.Fitted,
    *,
    uri: str,
    digest: str,
    progress: Progress,
    partial: dict[str, Any],
) -> None:
    """The MLflow run, once the artifact (and its report) are published."""
    partial["tracking"] = track(
        request, meta, fitted.pipeline, uri=uri, digest=digest, progress=progress
    )


def load_protected(spec: TrainingJobSpec, progress: Progress) -> data_module.Data:
    """The data, with privacy.drop columns removed and privacy.hash columns hashed."""
    rules = spec.privacy
    if rules is None or not (rules.drop or rules.hash):
        return data_module.load(spec.dataset, spec.preprocessing.categorical_columns)
    privacy.check(rules, spec.dataset.target or "target", spec.dataset.features)
    salt = privacy.salt_from_env() if rules.hash else None

    def protect(frame: pd.DataFrame) -> pd.DataFrame:
        return privacy.protect(frame, rules, salt)

    data = data_module.load(spec.dataset, spec.preprocessing.categorical_columns, protect)
    if rules.drop:
        progress(f"dropped {len(rules.drop)} column(s) before reading: {', '.join(rules.drop)}")
    if rules.hash:
        progress(f"hashed {len(rules.hash)} column(s) with the salt: {', '.join(rules.hash)}")
    return data


def scan(
    spec: TrainingJobSpec, data: data_module.Data, progress: Progress, partial: dict[str, Any]
) -> dict[str, Any]:
    """The PII scan of the features, and its gate: PrivacyGateFailedError when it must fail."""
    rules = spec.privacy or Privacy()
    found = [] if rules.pii_gate == "off" else privacy.scan(data.frame, rules.keep, spec.split.seed)
    summary = privacy.summary(rules, found)
    record: dict[str, Any] = dict(partial.get("privacy") or {})
    if found:
        record["pii"] = [f.to_json() for f in found]
    partial["privacy"] = record or None
    blocking = privacy.blocking(found)
    if blocking:
        what = "; ".join(f.describe() for f in blocking)
        if rules.pii_gate == "fail":
            raise PrivacyGateFailedError(
                f"personal data in the features: {what}; drop or hash the column(s) "
                "(privacy.drop, privacy.hash) or declare them in privacy.keep"
            )
        progress(f"columns that look like personal data: {what}", level="warning")
    return summary


def metadata(
    pipeline: Any,
    x_test: pd.DataFrame,
    seed: int,
    progress: Progress,
    partial: dict[str, Any],
    **fields: Any,
) -> Metadata:
    """metadata.json's content, with the global SHAP importance and the privacy record."""
    from trainer.explain import shap_importance

    shap, why = shap_importance(pipeline, Metadata(**fields), x_test, seed)
    if why:
        progress(why, level="warning")
    return Metadata(**fields, shapImportance=shap, privacy=partial.get("privacy"))


def private_fit(
    spec: TrainingJobSpec,
    model: Any,
    cls: type,
    *,
    x: pd.DataFrame,
    y: pd.Series,
    progress: Progress,
    partial: dict[str, Any],
) -> search.Fitted:
    """One differentially private fit; the budget spent goes into ``partial["privacy"]``."""
    private = spec.privacy.differential_privacy if spec.privacy else None
    assert private is not None
    path = spec.model.estimator
    progress(f"fitting {cls.__name__} on {len(x)} rows (epsilon {private.epsilon:g})")
    fit = dp.fit(model, x, y, private, path)
    record = dict(partial.get("privacy") or {})
    record.update(epsilon=private.epsilon, delta=private.delta, spent=fit.spent, estimator=path)
    partial["privacy"] = record
    return search.Fitted(
        pipeline=fit.pipeline,
        cv_scoring="none (differentially private: fitted once)",
        cv_scores=[float("nan")],
        warnings=fit.warnings,
    )


def report_page(
    meta: Metadata,
    test: tuple[pd.DataFrame, pd.Series],
    fitted: search.Fitted,
    progress: Progress,
) -> bytes | None:
    """The HTML report, published with the artifact (None when it cannot be rendered)."""
    from trainer.htmlreport import render

    try:
        evaluated = render.evaluation(fitted.pipeline, *test, meta.task)
        return render.page(meta, evaluated, fitted).encode()
    except Exception as error:  # a report is worth a warning, never a failed run
        progress(f"no report: {type(error).__name__}: {error}", level="warning")
        return None


def track(
    request: Any, meta: Metadata, pipeline: Any, *, uri: str, digest: str, progress: Progress
) -> dict[str, Any] | None:
    """Log the run to MLflow when a tracking server is configured; warn (or fail) on error."""
    from trainer import tracking

    settings = request.spec.tracking
    server = (settings.uri if settings else None) or os.environ.get(TRACKING_URI_ENV)
    if not server:
        return None
    try:
        tracked = tracking.log_run(server, request, meta, pipeline, uri=uri, digest=digest)
    except Exception as error:
        message = f"MLflow at {server}: {type(error).__name__}: {error}"
        if settings is not None and settings.required:
            raise TrackingFailedError(message) from None
        progress(f"not tracked: {message}", level="warning")
        return None
    progress(f"tracked in MLflow: run {tracked['runId']}")
    return tracked
