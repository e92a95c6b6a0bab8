"""Fitting with or without a hyperparameter search (docs/search.md).

- no search: k-fold cross-validation, then the fit (:mod:`.crossval`);
- ``halving``: scikit-learn's successive halving, in one process (:mod:`.halving`);
- ``grid``, ``random``, ``bayesian``: trials in an Optuna study (:mod:`.engine`) that every
  worker of the search shares (:mod:`.study`). Worker 0 waits for the others, refits the
  best candidate and returns it to be published; any other worker returns
  :class:`WorkerDone`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
from sklearn.pipeline import Pipeline

from mlops_operator.api.common import duration_seconds
from mlops_operator.api.trainingjob import Search, SearchStatus
from trainer.errors import TrainingFailedError
from trainer.search import engine, halving, space, summary
from trainer.search import study as studies
from trainer.search.crossval import (
    DEFAULT_CV,
    DEFAULT_SCORING,
    Fitted,
    check_scoring,
    cross_validated,
    folds,
)
from trainer.search.evaluation import Evaluator
from trainer.search.sharding import worker_seed
from trainer.search.study import Where

__all__ = [
    "DEFAULT_CV",
    "Fitted",
    "Where",
    "WorkerDone",
    "check_scoring",
    "fit",
    "folds",
]

PRUNER_STARTUP_TRIALS = 5
"""Trials that always run every fold, so the median the pruner compares with means something."""


@dataclass(frozen=True)
class WorkerDone:
    """A worker other than 0 finished its part of the search (worker 0 publishes)."""

    worker: int
    search: SearchStatus
    warnings: list[str]


def candidates(search: Search, seed: int) -> list[dict[str, Any]]:
    """The candidate list of grid and random search, the same in every worker."""
    listed = space.Space.of(search)
    if search.strategy == "grid":
        return space.grid(listed)
    return space.sampled(listed, search.n_iter, seed)


def fit(
    pipeline: Pipeline,
    *,
    search: Search | None,
    task: str,
    seed: int,
    x: pd.DataFrame,
    y: pd.Series,
    where: Where | None = None,
    report: Callable[..., None] | None = None,
) -> Fitted | WorkerDone:
    if search is None:
        return cross_validated(pipeline, task=task, seed=seed, x=x, y=y)
    scoring = check_scoring(search.scoring or DEFAULT_SCORING[task])
    cv = folds(task, search.cv, seed, y)
    if search.strategy == "halving":
        return halving.fit(pipeline, search, cv=cv, scoring=scoring, seed=seed, x=x, y=y)
    where = where or Where(store="memory://", namespace="default", name="search", version="0")
    say = report or (lambda *_a, **_k: None)
    caught: list[str] = []
    evaluate = Evaluator(pipeline, x, y, list(cv.split(x, y)), scoring, caught)
    study = _open(search, where, seed)
    listed = candidates(search, seed) if search.strategy != "bayesian" else []
    planned = search.n_trials if search.strategy == "bayesian" else len(listed)
    part = engine.Part(
        study, where.worker, search.parallelism, evaluate, say, scoring, planned, errors=[]
    )
    lost = studies.recover(study, where.worker)
    if lost:
        say(f"worker {where.worker}: trials {lost} were lost with an earlier Pod; they run again")
    if not studies.is_done(study, where.worker):
        if search.strategy == "bayesian":
            limit = duration_seconds(search.timeout) if search.timeout else None
            deadline = studies.started(study) + limit if limit else None
            engine.run_bayesian(part, space.Space.of(search), search.n_trials, deadline)
        else:
            engine.run_listed(part, listed)
        studies.mark_done(study, where.worker)
    if where.worker != 0:
        status = _status(search, study, planned)
        return WorkerDone(worker=where.worker, search=status, warnings=caught)
    studies.wait_for_workers(
        study,
        search.parallelism,
        lambda waiting: say(f"waiting for search workers {waiting} to finish their part"),
    )
    status = _status(search, study, planned)
    top = summary.best(studies.records(study))
    if top is None:
        raise (
            part.errors[0]
            if part.errors
            else TrainingFailedError(
                "training failed: no trial of the search finished (every candidate failed to fit?)"
            )
        )
    say(f"refitting the best trial (#{top.number}) on the whole training set")
    return Fitted(
        pipeline=evaluate.refit(top.params),
        cv_scoring=scoring,
        cv_scores=top.scores,
        best_params=top.params,
        candidates=part.finished(),  # a trial lost with its Pod ran its candidate again
        warnings=caught,
        search=status,
    )


def _open(search: Search, where: Where, seed: int) -> optuna.Study:
    sampler: optuna.samplers.BaseSampler | None = None
    pruner: optuna.pruners.BasePruner | None = None
    if search.strategy == "bayesian":
        sampler = optuna.samplers.TPESampler(
            seed=worker_seed(seed, where.worker), constant_liar=search.parallelism > 1
        )
        pruner = (
            optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS)
            if search.pruning
            else optuna.pruners.NopPruner()
        )
    path = studies.journal_path(where, search.parallelism)
    return studies.open_study(
        path, f"{where.namespace}/{where.name}/{where.version}", sampler, pruner
    )


def _status(search: Search, study: optuna.Study, planned: int | None) -> SearchStatus:
    done = sum(studies.is_done(study, w) for w in range(search.parallelism))
    return summary.status(
        studies.records(study),
        strategy=search.strategy,
        planned=planned,
        workers=search.parallelism,
        workers_done=done,
    )
