"""Fitting: k-fold cross-validation of the pipeline, or a grid/random hyperparameter search.

Either way the outcome is a pipeline refitted on the whole training set, the cross-validation
score of what was chosen (``cv_mean``, ``cv_std``) and, after a search, the best params.
Folds are stratified for classification and shuffled with the spec's seed; everything runs
in one process (``n_jobs=1``), so the same spec, data and seed give the same model.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    StratifiedKFold,
    cross_validate,
)
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from mlops_operator.api.trainingjob import Search
from trainer.errors import BadParamsError, TrainingFailedError
from trainer.pipeline import MODEL_STEP

DEFAULT_CV = 5
DEFAULT_SCORING = {"classification": "accuracy", "regression": "r2"}


@dataclass
class Fitted:
    pipeline: Pipeline
    cv_scoring: str
    cv_scores: list[float]
    best_params: dict[str, Any] | None = None
    candidates: int = 1
    warnings: list[str] = field(default_factory=list)

    @property
    def cv_mean(self) -> float:
        return float(np.mean(self.cv_scores))

    @property
    def cv_std(self) -> float:
        return float(np.std(self.cv_scores))


def folds(task: str, n_splits: int, seed: int, y: pd.Series) -> KFold | StratifiedKFold:
    if task == "classification":
        smallest = int(y.value_counts().min())
        if smallest < n_splits:
            raise BadParamsError(
                f"cross-validation: {n_splits} folds need at least {n_splits} rows of every "
                f"class in the training set; the smallest class has {smallest}"
            )
        return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if len(y) < n_splits:
        raise BadParamsError(
            f"cross-validation: {n_splits} folds need at least {n_splits} training rows"
        )
    return KFold(n_splits=n_splits, shuffle=True, random_state=seed)


def check_scoring(scoring: str) -> str:
    if scoring not in get_scorer_names():
        raise BadParamsError(
            f"search.scoring: unknown scorer {scoring!r}; e.g. accuracy, f1_macro, roc_auc, "
            "r2, neg_mean_squared_error"
        )
    get_scorer(scoring)
    return scoring


def _run(action: Callable[[], Any], caught: list[str]) -> Any:
    """Run ``action``, turning scikit-learn's failures into one-line errors."""
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        try:
            result = action()
        except InvalidParameterError as error:
            raise BadParamsError(f"invalid parameter: {error}") from None
        except (ValueError, TypeError) as error:
            text = " ".join(str(error).split())
            if "InvalidParameterError" in text:
                detail = text.split("InvalidParameterError:", 1)[1].strip()
                raise BadParamsError(f"invalid parameter: {detail[:400]}") from None
            if "got an unexpected keyword" in text:
                raise BadParamsError(text[:400]) from None
            raise TrainingFailedError(f"training failed: {text[:400]}") from None
        except MemoryError:
            raise TrainingFailedError("training failed: out of memory") from None
    for item in recorded:
        line = f"{item.category.__name__}: {' '.join(str(item.message).split())}"[:300]
        if line not in caught:
            caught.append(line)
    return result


def fit(
    pipeline: Pipeline,
    search: Search | None,
    task: str,
    seed: int,
    x: pd.DataFrame,
    y: pd.Series,
) -> Fitted:
    caught: list[str] = []
    n_splits = search.cv if search else DEFAULT_CV
    scoring = check_scoring(
        (search.scoring if search else None) or DEFAULT_SCORING[task]
    )
    cv = folds(task, n_splits, seed, y)
    if search is None:
        scores = _run(
            lambda: cross_validate(clone(pipeline), x, y, cv=cv, scoring=scoring, n_jobs=1),
            caught,
        )
        _run(lambda: pipeline.fit(x, y), caught)
        return Fitted(
            pipeline=pipeline,
            cv_scoring=scoring,
            cv_scores=[float(s) for s in scores["test_score"]],
            warnings=caught,
        )
    grid = {f"{MODEL_STEP}__{name}": list(values) for name, values in search.params.items()}
    for name, values in search.params.items():
        if not values:
            raise BadParamsError(f"search.params.{name}: needs at least one candidate value")
    size = math.prod(len(values) for values in grid.values())
    searcher: GridSearchCV | RandomizedSearchCV
    if search.strategy == "grid":
        searcher = GridSearchCV(pipeline, grid, cv=cv, scoring=scoring, n_jobs=1, refit=True)
    else:
        searcher = RandomizedSearchCV(
            pipeline,
            grid,
            n_iter=min(search.n_iter, size),
            cv=cv,
            scoring=scoring,
            n_jobs=1,
            refit=True,
            random_state=seed,
        )
    _run(lambda: searcher.fit(x, y), caught)
    best = int(searcher.best_index_)
    results = searcher.cv_results_
    scores = [float(results[f"split{i}_test_score"][best]) for i in range(n_splits)]
    if any(math.isnan(score) for score in scores):
        raise TrainingFailedError(
            "training failed: the best candidate's cross-validation scores are NaN "
            "(every candidate failed to fit?)"
        )
    best_params = {
        name.removeprefix(f"{MODEL_STEP}__"): _plain(value)
        for name, value in searcher.best_params_.items()
    }
    return Fitted(
        pipeline=searcher.best_estimator_,
        cv_scoring=scoring,
        cv_scores=scores,
        best_params=best_params,
        candidates=len(results["params"]),
        warnings=caught,
    )


def _plain(value: Any) -> Any:
    """A JSON-friendly value (numpy scalars become Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
