"""The local runner runs a parallel search as N `mlops train` processes on one study."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_operator.api import TrainingJob
from mlops_operator.local.home import Home
from mlops_operator.local.training import train

pytestmark = pytest.mark.component


def test_a_parallel_search_runs_as_one_process_per_worker(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.prepare()
    job = TrainingJob.model_validate(
        {
            "metadata": {"name": "wine"},
            "spec": {
                "dataset": {"builtin": "wine"},
                "model": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
                "search": {
                    "params": {"max_depth": [1, 2, 3, 4, 5, 6], "min_samples_leaf": [1, 8]},
                    "cv": 3,
                    "parallelism": 2,
                },
            },
        }
    )
    lines: list[str] = []
    result = train(job, home, lines.append)
    assert result.phase == "Succeeded", result.message
    assert result.search is not None
    assert (result.search.completed, result.search.workers) == (12, 2)
    assert result.search.workers_done == 2
    assert any("trial" in line for line in lines)  # worker 0's own trials, streamed
    assert (home.logs / "train-wine-worker-1.log").exists()
    assert result.model is not None
    published = [p.name for p in (home.models / "default" / "wine").iterdir()]
    assert sorted(published) == [".search", result.model.version]
