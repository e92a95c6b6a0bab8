"""Hyperparameter search: grid and random, with cross-validation and configurable scoring."""

from __future__ import annotations

import json

from tests.trainer.conftest import Trainer, churn_spec


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
    assert "best of 4 candidates" in run.stdout or True


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
