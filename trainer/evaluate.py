"""Evaluation on the held-out test set: the metrics, the confusion matrix, the headline score.

Metric names are the API's (``CLASSIFICATION_METRICS``, ``REGRESSION_METRICS``, plus
``cv_mean``/``cv_std``), so a quality gate names exactly the keys found here. ``roc_auc`` is
present only where it is defined: the estimator gives probabilities and every class occurs in
the test set (binary: the positive class's probability; multiclass: one-vs-rest, macro).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline

HEADLINE = {"classification": "accuracy", "regression": "r2"}


@dataclass
class Evaluation:
    metrics: dict[str, float]
    confusion_matrix: dict[str, Any] | None


def classification_metrics(
    pipeline: Pipeline, x: pd.DataFrame, y: pd.Series
) -> Evaluation:
    predicted = pipeline.predict(x)
    result: dict[str, float] = {
        "accuracy": skm.accuracy_score(y, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
    }
    for average in ("macro", "weighted"):
        result[f"precision_{average}"] = skm.precision_score(
            y, predicted, average=average, zero_division=0
        )
        result[f"recall_{average}"] = skm.recall_score(
            y, predicted, average=average, zero_division=0
        )
        result[f"f1_{average}"] = skm.f1_score(y, predicted, average=average, zero_division=0)
    classes = list(pipeline.classes_)
    if hasattr(pipeline, "predict_proba") and set(classes) == set(y) and len(classes) > 1:
        try:
            probabilities = pipeline.predict_proba(x)
        except (AttributeError, NotImplementedError):
            probabilities = None
        if probabilities is not None and np.all(np.isfinite(probabilities)):
            if len(classes) == 2:
                result["roc_auc"] = skm.roc_auc_score(y, probabilities[:, 1])
            else:
                result["roc_auc"] = skm.roc_auc_score(
                    y, probabilities, multi_class="ovr", average="macro", labels=classes
                )
    matrix = skm.confusion_matrix(y, predicted, labels=classes)
    return Evaluation(
        metrics={name: float(value) for name, value in result.items()},
        confusion_matrix={
            "labels": [plain(label) for label in classes],
            "matrix": matrix.tolist(),
        },
    )


def regression_metrics(pipeline: Pipeline, x: pd.DataFrame, y: pd.Series) -> Evaluation:
    predicted = pipeline.predict(x)
    mse = float(skm.mean_squared_error(y, predicted))
    result = {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(skm.mean_absolute_error(y, predicted)),
        "r2": float(skm.r2_score(y, predicted)) if len(y) > 1 else float("nan"),
    }
    return Evaluation(metrics=result, confusion_matrix=None)


def evaluate(task: str, pipeline: Pipeline, x: pd.DataFrame, y: pd.Series) -> Evaluation:
    if task == "classification":
        return classification_metrics(pipeline, x, y)
    return regression_metrics(pipeline, x, y)


def headline(task: str, metrics: dict[str, float]) -> str:
    """The headline score, e.g. accuracy=0.967 or r2=0.41."""
    name = HEADLINE[task]
    return f"{name}={metrics[name]:.3g}" if name in metrics else ""


def plain(value: Any) -> Any:
    """A JSON-friendly value (numpy scalars become Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
