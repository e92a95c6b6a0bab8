"""The search's pure parts: parameter spaces (grid, samples, Optuna's), sharding, the summary."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest

from mlops_operator.api.trainingjob import ParamRange, Search
from trainer.search import candidates, summary
from trainer.search.sharding import shard, worker_seed
from trainer.search.space import Space, encode, grid, sampled, suggest

LISTED = {"max_depth": [2, 4, None], "criterion": ["gini", "entropy"]}
RANGES = {
    "C": ParamRange(type="float", low=0.001, high=100, log=True),
    "alpha": ParamRange(type="float", low=0.5, high=0.75),
    "n_estimators": ParamRange(type="int", low=10, high=20),
    "max_iter": ParamRange(type="int", low=10, high=10000, log=True),
}


def test_grid_is_every_combination_in_scikit_learns_order() -> None:
    combos = grid(Space(listed=LISTED, ranges={}))
    assert len(combos) == 6
    assert combos[0] == {"criterion": "gini", "max_depth": 2}
    assert combos[-1] == {"criterion": "entropy", "max_depth": None}
    assert len({encode(c) for c in combos}) == 6


def test_samples_are_seeded_and_stay_in_their_ranges() -> None:
    space = Space(listed={"criterion": ["gini", "entropy"]}, ranges=RANGES)
    first, again, other = sampled(space, 50, 3), sampled(space, 50, 3), sampled(space, 50, 4)
    assert first == again
    assert first != other
    for candidate in first:
        assert 0.001 <= candidate["C"] <= 100
        assert 0.5 <= candidate["alpha"] <= 0.75
        assert isinstance(candidate["n_estimators"], int)
        assert 10 <= candidate["n_estimators"] <= 20
        assert isinstance(candidate["max_iter"], int)
        assert 10 <= candidate["max_iter"] <= 10000
        assert candidate["criterion"] in ("gini", "entropy")
    # log-uniform: about as many draws below the geometric middle as above it
    below = sum(c["C"] < math.sqrt(0.001 * 100) for c in sampled(space, 400, 1))
    assert 140 < below < 260


def test_samples_of_lists_never_repeat_and_stop_at_the_grid() -> None:
    space = Space(listed=LISTED, ranges={})
    assert len(sampled(space, 4, 0)) == 4
    assert len({encode(c) for c in sampled(space, 4, 0)}) == 4
    assert sorted(map(encode, sampled(space, 100, 0))) == sorted(map(encode, grid(space)))


def test_optuna_suggests_within_the_space_including_any_json_value() -> None:
    space = Space(
        listed={"hidden_layer_sizes": [[64], [64, 32]], "max_depth": [2, None]}, ranges=RANGES
    )
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        chosen = suggest(trial, space)
        assert chosen["hidden_layer_sizes"] in ([64], [64, 32])
        assert chosen["max_depth"] in (2, None)
        assert 0.001 <= chosen["C"] <= 100
        assert isinstance(chosen["n_estimators"], int)
        study.tell(trial, 0.5)
    assert set(study.trials[0].distributions) == set(space.names)
    assert study.trials[0].distributions["C"].log is True


@pytest.mark.parametrize(
    ("spec", "planned"),
    [
        ({"strategy": "grid", "params": LISTED}, 6),
        ({"strategy": "random", "params": LISTED, "nIter": 4}, 4),
        ({"strategy": "random", "params": LISTED, "nIter": 40}, 6),
        (
            {"strategy": "random", "params": LISTED, "ranges": {"C": RANGES["C"].dump()}},
            10,
        ),
        ({"strategy": "bayesian", "params": LISTED, "nTrials": 7}, 7),
    ],
)
def test_the_planned_trials_are_the_candidates_every_worker_computes(
    spec: dict[str, Any], planned: int
) -> None:
    search = Search.model_validate(spec)
    assert search.planned_trials() == planned
    if search.strategy != "bayesian":
        assert len(candidates(search, seed=42)) == planned


@pytest.mark.parametrize(("count", "workers"), [(0, 1), (1, 3), (16, 3), (64, 4), (5, 8)])
def test_shards_are_disjoint_and_cover_the_candidates(count: int, workers: int) -> None:
    shards = [list(shard(count, worker, workers)) for worker in range(workers)]
    every = sorted(i for part in shards for i in part)
    assert every == list(range(count))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_a_worker_index_outside_the_search_is_refused() -> None:
    with pytest.raises(ValueError, match="worker 3 of 3"):
        shard(10, 3, 3)


def test_bayesian_workers_get_distinct_fixed_seeds() -> None:
    assert [worker_seed(42, w) for w in range(3)] == [42, 43, 44]


def record(number: int, state: str, score: float | None, **extra: Any) -> summary.Record:
    return summary.Record(number=number, state=state, params={"n": number}, score=score, **extra)


def test_the_best_is_the_highest_score_and_a_tie_goes_to_the_first_candidate() -> None:
    records = [
        record(0, summary.COMPLETE, 0.9, candidate=5),
        record(1, summary.COMPLETE, 0.95, candidate=7),
        record(2, summary.COMPLETE, 0.95, candidate=3),
        record(3, summary.PRUNED, None),
        record(4, summary.FAILED, None, error="boom"),
    ]
    top = summary.best(records)
    assert top is not None
    assert top.number == 2
    assert summary.best([record(0, summary.FAILED, None)]) is None


def test_the_status_counts_trials_by_state_and_times_them() -> None:
    records = [
        record(0, summary.COMPLETE, 0.9, seconds=1.0, started=100.0, finished=101.0),
        record(1, summary.PRUNED, None, seconds=0.5, started=100.5, finished=101.0),
        record(2, summary.FAILED, None, seconds=0.1, started=101.0, finished=101.1),
        record(3, summary.COMPLETE, 0.8, seconds=2.0, started=101.0, finished=103.0),
        record(4, summary.RUNNING, None, started=103.0),
    ]
    status = summary.status(records, strategy="bayesian", planned=10, workers=2, workers_done=1)
    assert (status.completed, status.pruned, status.failed) == (2, 1, 1)
    assert status.progress == "3/10"
    assert status.best_trial == 0
    assert status.best_score == 0.9
    assert status.best_params == {"n": 0}
    assert status.seconds_per_trial == pytest.approx((1.0 + 0.5 + 2.0) / 3, abs=1e-3)
    assert status.seconds == pytest.approx(3.0)


def test_a_trial_reads_as_one_progress_line() -> None:
    done = record(4, summary.COMPLETE, 0.9125, scores=[0.9, 0.925], seconds=0.42)
    line = summary.describe(done, 5, 20, "accuracy", done)
    assert line == (
        "trial 5/20 (#4) accuracy 0.9125 ± 0.0125 in 0.42s {'n': 4}; best 0.9125 (trial 4)"
    )
    pruned = record(5, summary.PRUNED, None, scores=[0.5])
    assert "pruned after 1 folds" in summary.describe(pruned, 6, 20, "accuracy", done)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"strategy": "bayesian"}, "give candidate values in params or ranges"),
        (
            {"params": {"C": [1]}, "ranges": {"C": RANGES["C"].dump()}, "strategy": "random"},
            "C is either listed in params or ranged, not both",
        ),
    ],
)
def test_what_the_api_server_cannot_check_the_model_does(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Search.model_validate(spec)
