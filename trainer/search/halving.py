"""``strategy: halving``: scikit-learn's successive halving, in one process.

Every candidate starts on a small share of the training rows; each round keeps the best
third and gives them three times the rows, until one round fits on them all. Listed values
are halved as a grid; with ranges, nIter sampled candidates are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.experimental import enable_halving_search_cv  # noqa: F401 (enables the import)
from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV
from sklearn.pipeline import Pipeline

from mlops_operator.api.trainingjob import Search, SearchStatus
from trainer.errors import TrainingFailedError
from trainer.pipeline import MODEL_STEP
from trainer.search.crossval import Fitted, guarded, plain
from trainer.search.space import Space, distribution

FACTOR = 3


def fit(
    pipeline: Pipeline,
    search: Search,
    *,
    cv: Any,
    scoring: str,
    seed: int,
    x: pd.DataFrame,
    y: pd.Series,
) -> Fitted:
    caught: list[str] = []
    space = Space.of(search)
    params: dict[str, Any] = {f"{MODEL_STEP}__{n}": v for n, v in space.listed.items()}
    common: dict[str, Any] = {
        "cv": cv,
        "scoring": scoring,
        "factor": FACTOR,
        "n_jobs": 1,
        "refit": True,
        "random_state": seed,
        "min_resources": "exhaust",
    }
    searcher: HalvingGridSearchCV | HalvingRandomSearchCV
    if space.ranges:
        for name, value in space.ranges.items():
            params[f"{MODEL_STEP}__{name}"] = distribution(value)
        searcher = HalvingRandomSearchCV(pipeline, params, n_candidates=search.n_iter, **common)
    else:
        searcher = HalvingGridSearchCV(pipeline, params, **common)
    guarded(lambda: searcher.fit(x, y), caught)
    results = searcher.cv_results_
    best = int(searcher.best_index_)
    scores = [float(results[f"split{i}_test_score"][best]) for i in range(search.cv)]
    if any(np.isnan(scores)):
        raise TrainingFailedError(
            "training failed: the best candidate's cross-validation scores are NaN "
            "(every candidate failed to fit?)"
        )
    best_params = {
        name.removeprefix(f"{MODEL_STEP}__"): plain(value)
        for name, value in searcher.best_params_.items()
    }
    first, last = int(searcher.n_candidates_[0]), int(searcher.n_candidates_[-1])
    fit_seconds = results["mean_fit_time"] + results["mean_score_time"]
    status = SearchStatus(
        strategy="halving",
        progress=f"{first}/{first}",
        planned=first,
        completed=last,
        pruned=first - last,
        failed=int(np.isnan(results["mean_test_score"]).sum()),
        workers=1,
        workers_done=1,
        best_score=round(float(results["mean_test_score"][best]), 6),
        best_params=best_params,
        seconds_per_trial=round(float(np.mean(fit_seconds)) * search.cv, 4),
    )
    return Fitted(
        pipeline=searcher.best_estimator_,
        cv_scoring=scoring,
        cv_scores=scores,
        best_params=best_params,
        candidates=first,
        warnings=caught,
        search=status,
    )
