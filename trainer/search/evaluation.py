"""One trial: a candidate's cross-validation, fold by fold, so a pruner may stop it early.

The folds are computed once per search (the same for every candidate and every worker), and
each fold fits a fresh clone of the pipeline with the candidate's params: the scores are the
ones ``GridSearchCV`` would compute for that candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline

from trainer.pipeline import MODEL_STEP
from trainer.search.crossval import guarded

Prune = Callable[[int, float], bool]
"""Told (fold, running mean score) after each fold; True stops the trial."""


class Pruned(Exception):
    """The pruner stopped the trial after the folds whose ``scores`` it saw."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__(f"pruned after {len(scores)} folds")
        self.scores = scores


def prefixed(params: dict[str, Any]) -> dict[str, Any]:
    """Estimator params as the pipeline's params (model__max_depth)."""
    return {f"{MODEL_STEP}__{name}": value for name, value in params.items()}


@dataclass
class Evaluator:
    pipeline: Pipeline
    x: pd.DataFrame
    y: pd.Series
    splits: list[tuple[np.ndarray, np.ndarray]]
    scoring: str
    warnings: list[str]

    def __call__(self, params: dict[str, Any], prune: Prune | None = None) -> list[float]:
        """The candidate's score on each fold; Pruned when ``prune`` says so."""
        scorer = get_scorer(self.scoring)
        scores: list[float] = []
        for fold, (train, test) in enumerate(self.splits):
            scores.append(self._fold(params, scorer, train, test))
            last = fold == len(self.splits) - 1
            if prune is not None and not last and prune(fold, float(np.mean(scores))):
                raise Pruned(scores)
        return scores

    def _fold(
        self, params: dict[str, Any], scorer: Any, train: np.ndarray, test: np.ndarray
    ) -> float:
        model = clone(self.pipeline).set_params(**prefixed(params))
        guarded(lambda: model.fit(self.x.iloc[train], self.y.iloc[train]), self.warnings)
        score = guarded(lambda: scorer(model, self.x.iloc[test], self.y.iloc[test]), self.warnings)
        return float(score)

    def refit(self, params: dict[str, Any]) -> Pipeline:
        """The pipeline with ``params``, fitted on the whole training set."""
        model = clone(self.pipeline).set_params(**prefixed(params))
        guarded(lambda: model.fit(self.x, self.y), self.warnings)
        return model
