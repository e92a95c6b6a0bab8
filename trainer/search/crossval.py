"""What every way of fitting shares: folds, scorers, failures as one-line errors, the outcome.

The outcome (:class:`Fitted`) is a pipeline refitted on the whole training set, the
cross-validation scores of what was chosen (``cv_mean``, ``cv_std``) and, after a search, the
best params and the search's status. Folds are stratified for classification and shuffled with
the spec's seed; a process fits one model at a time (``n_jobs=1``), so the same spec, data and
seed give the same model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from mlops_operator.api.trainingjob import SearchStatus
from trainer.errors import BadParamsError, TrainingFailedError

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
    search: SearchStatus | None = None

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


def guarded(action: Callable[[], Any], caught: list[str]) -> Any:
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


def cross_validated(
    pipeline: Pipeline, *, task: str, seed: int, x: pd.DataFrame, y: pd.Series
) -> Fitted:
    """No search: the pipeline's k-fold cross-validation, then its fit on the whole set."""
    caught: list[str] = []
    scoring = check_scoring(DEFAULT_SCORING[task])
    cv = folds(task, DEFAULT_CV, seed, y)
    scores = guarded(
        lambda: cross_validate(clone(pipeline), x, y, cv=cv, scoring=scoring, n_jobs=1), caught
    )
    guarded(lambda: pipeline.fit(x, y), caught)
    return Fitted(
        pipeline=pipeline,
        cv_scoring=scoring,
        cv_scores=[float(s) for s in scores["test_score"]],
        warnings=caught,
    )


def plain(value: Any) -> Any:
    """A JSON-friendly value (numpy scalars become Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
