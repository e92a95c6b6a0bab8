"""Data quality and explainability: the data report, feature statistics, feature importance.

- The data report describes the data as loaded: rows, duplicate rows, the fraction of missing
  values per column, and the class balance (classification) or the target's range (regression).
- Feature statistics describe the training set, the baseline the model server compares live
  traffic with to detect drift: numeric features get quantile bins (the inner edges of up to
  10 equal-frequency bins; a value ``v`` falls in bin ``searchsorted(edges, v, side="right")``,
  as ``numpy.digitize`` does) and categorical ones their category frequencies.
- Permutation importance is measured on the test set with the headline metric (accuracy or
  r2): how much the score drops when one input column's values are shuffled. All shuffled
  copies are predicted in one batch, so it costs one large ``predict`` instead of
  ``features x repeats`` small ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import Pipeline

from model_server.artifact import CategoricalStats, NumericStats
from trainer.evaluate import plain

BINS = 10
IMPORTANCE_REPEATS = 5
IMPORTANCE_MAX_ROWS = 2000
"""Permutation importance uses at most this many test rows (a seeded sample)."""
IMPORTANCE_BATCH_ROWS = 200_000


def data_report(frame: pd.DataFrame, target: pd.Series, task: str) -> dict[str, Any]:
    whole = frame.assign(**{f"__target__{target.name}": target})
    missing = {str(c): round(float(frame[c].isna().mean()), 6) for c in frame.columns}
    report: dict[str, Any] = {
        "rows": len(frame),
        "columns": len(frame.columns),
        "duplicates": int(whole.duplicated().sum()),
        "missing": missing,
        "maxMissingFraction": max(missing.values(), default=0.0),
    }
    if task == "classification":
        counts = target.value_counts().sort_index()
        report["classBalance"] = {str(k): int(v) for k, v in counts.items()}
    else:
        values = target.to_numpy(dtype=float)
        report["targetRange"] = {
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
    return report


def numeric_stats(column: pd.Series) -> NumericStats:
    values = column.to_numpy(dtype=float)
    present = values[~np.isnan(values)]
    missing = float(1 - len(present) / len(values)) if len(values) else 0.0
    if len(present) == 0:
        return NumericStats(mean=0.0, std=0.0, missing=missing, binEdges=[], fractions=[1.0])
    quantiles = np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1])
    edges = np.unique(quantiles)
    bins = np.searchsorted(edges, present, side="right")
    fractions = np.bincount(bins, minlength=len(edges) + 1) / len(present)
    return NumericStats(
        mean=float(present.mean()),
        std=float(present.std()),
        missing=missing,
        binEdges=[float(edge) for edge in edges],
        fractions=[round(float(f), 6) for f in fractions],
    )


def categorical_stats(column: pd.Series) -> CategoricalStats:
    present = column.dropna()
    missing = float(1 - len(present) / len(column)) if len(column) else 0.0
    counts = present.astype(str).value_counts(sort=False).sort_index()
    total = max(len(present), 1)
    return CategoricalStats(
        missing=missing, fractions={str(k): round(int(v) / total, 6) for k, v in counts.items()}
    )


def feature_stats(
    frame: pd.DataFrame, categorical: list[str]
) -> dict[str, NumericStats | CategoricalStats]:
    return {
        column: categorical_stats(frame[column])
        if column in categorical
        else numeric_stats(frame[column])
        for column in frame.columns
    }


def _score(task: str, y: np.ndarray, predicted: np.ndarray) -> float:
    if task == "classification":
        return float(accuracy_score(y, predicted))
    return float(r2_score(y, predicted)) if len(y) > 1 else 0.0


def permutation_importance(
    pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, task: str, seed: int
) -> dict[str, dict[str, float]]:
    """Mean and std of the score drop per input column, most important first."""
    rng = np.random.default_rng(seed)
    if len(x) > IMPORTANCE_MAX_ROWS:
        rows = np.sort(rng.choice(len(x), IMPORTANCE_MAX_ROWS, replace=False))
        x, y = x.iloc[rows].reset_index(drop=True), y.iloc[rows].reset_index(drop=True)
    truth = y.to_numpy()
    baseline = _score(task, truth, pipeline.predict(x))
    n = len(x)
    repeats = max(1, min(IMPORTANCE_REPEATS, IMPORTANCE_BATCH_ROWS // max(n, 1)))
    jobs = [(column, r) for column in x.columns for r in range(repeats)]
    drops: dict[str, list[float]] = {column: [] for column in x.columns}
    per_batch = max(1, IMPORTANCE_BATCH_ROWS // max(n, 1))
    for start in range(0, len(jobs), per_batch):
        batch = jobs[start : start + per_batch]
        copies = []
        for column, _ in batch:
            copy = x.copy()
            copy[column] = x[column].to_numpy()[rng.permutation(n)]
            copies.append(copy)
        predicted = pipeline.predict(pd.concat(copies, ignore_index=True))
        for index, (column, _) in enumerate(batch):
            block = predicted[index * n : (index + 1) * n]
            drops[column].append(baseline - _score(task, truth, block))
    importance = {
        column: {"mean": float(np.mean(values)), "std": float(np.std(values))}
        for column, values in drops.items()
    }
    return dict(sorted(importance.items(), key=lambda item: (-item[1]["mean"], item[0])))


__all__ = ["data_report", "feature_stats", "permutation_importance", "plain"]
