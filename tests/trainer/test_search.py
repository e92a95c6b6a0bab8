"""Hyperparameter search: grid and random, with cross-validation and configurable scoring."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from sklearn.datasets import load_wine
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from mlops_operator.api.trainingjob import Search
from tests.trainer.conftest import Trainer, churn_spec
from trainer.pipeline import MODEL_STEP
from trainer.search import Fitted, Where, WorkerDone, fit
from trainer.search import study as studies


def test_grid_search_tries_every_combination_and_records_the_best(train: Trainer) -> None:
    run = train(
        {
            "dataset": {"builtin": "wine"},
            "model": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
            "search": {
                "strategy": "grid",
                "params": {"max_depth": [1, 4], "min_samples_leaf": [1, 5]},
                "cv": 3,
                "scoring": "f1_macro",
            },
        }
    )
    assert run.code == 0, run.result["message"]
    best = run.result["bestParams"]
    assert best["max_depth"] in (1, 4)
    assert best["min_samples_leaf"] in (1, 5)
    assert best["max_depth"] == 4  # a stump cannot separate three classes
    assert run.result["cvScoring"] == "f1_macro"
    metadata = json.loads((run.artifact() / "metadata.json").read_text())
    assert metadata["bestParams"] == best
    assert metadata["params"]["max_depth"] == 4
    assert len(metadata["cvScores"]) == 3


def test_random_search_samples_n_iter_candidates(train: Trainer, churn_pvc: str) -> None:
    spec = churn_spec(
        churn_pvc,
        dataset={"uri": churn_pvc, "target": "monthly_spend", "task": "regression"},
        model={"estimator": "sklearn.linear_model.Ridge"},
        search={
            "strategy": "random",
            "params": {"alpha": [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]},
            "nIter": 3,
            "cv": 4,
            "scoring": "neg_mean_absolute_error",
        },
    )
    run = train(spec)
    assert run.code == 0, run.result["message"]
    assert run.result["task"] == "regression"
    assert run.result["bestParams"]["alpha"] in (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    assert run.result["cvScoring"] == "neg_mean_absolute_error"
    assert run.result["metrics"]["cv_mean"] < 0  # a negated error
    assert run.result["metrics"]["r2"] > 0.5
    metadata = json.loads((run.artifact() / "metadata.json").read_text())
    assert len(metadata["cvScores"]) == 4


def test_random_search_is_reproducible(train: Trainer) -> None:
    spec = {
        "dataset": {"builtin": "breast_cancer"},
        "model": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
        "search": {
            "strategy": "random",
            "params": {"max_depth": [1, 2, 3, 4, 5, 6], "criterion": ["gini", "entropy"]},
            "nIter": 4,
            "cv": 3,
        },
    }
    first, second = train(spec, version="a"), train(spec, version="b")
    assert first.result["bestParams"] == second.result["bestParams"]
    assert first.result["metrics"] == second.result["metrics"]


def test_a_trial_lost_with_its_pod_is_not_counted_as_a_candidate(tmp_path: Path) -> None:
    """A retried worker runs the candidate its dead Pod lost once more: a grid of 6 is 6
    candidates in 7 trials (the log's `best of 6 candidates`, the report's candidates)."""
    search = Search.model_validate(
        {"strategy": "grid", "params": {"max_depth": [1, 2, 3, 4, 5, 6]}, "cv": 3, "parallelism": 2}
    )
    x, y = load_wine(return_X_y=True, as_frame=True)
    pipeline = Pipeline([(MODEL_STEP, DecisionTreeClassifier(random_state=0))])
    where = Where(store=tmp_path.as_uri(), namespace="team-a", name="job", version="v")
    study = studies.open_study(studies.journal_path(where, 2), "team-a/job/v")
    lost = study.ask()  # worker 1's first Pod died in this trial: it stays RUNNING
    lost.set_user_attr("worker", 1)
    lost.set_user_attr("candidate", 1)
    common: dict[str, Any] = {
        "search": search,
        "task": "classification",
        "seed": 42,
        "x": x,
        "y": y,
    }
    assert isinstance(fit(pipeline, where=replace(where, worker=1), **common), WorkerDone)
    fitted = fit(pipeline, where=where, **common)
    assert isinstance(fitted, Fitted)
    assert (fitted.search.completed, fitted.search.failed) == (6, 1)
    assert fitted.candidates == 6
