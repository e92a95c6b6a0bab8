"""Drift-triggered retraining: the count of drifting intervals, the cooldown, the run."""

from __future__ import annotations

import datetime

import pytest

from mlops_operator.canary.retraining import DriftState, Policy, due, judge
from mlops_operator.schedule import ANNOTATION_RETRAINED_FOR, retraining_run

pytestmark = pytest.mark.unit
POLICY = Policy(max_psi=0.2, intervals=3, interval=60, cooldown=3600)


CALM = DriftState()


def run(readings: list[float | None], state: DriftState = CALM, start: float = 0.0):
    starts = []
    for n, psi in enumerate(readings):
        judged = judge(POLICY, state, psi, start + 60 * n)
        state = judged.state
        starts.append(judged.retrain)
    return state, starts


def test_intervals_drifting_in_a_row_start_one_run() -> None:
    state, starts = run([0.5, 0.5, 0.5])
    assert starts == [False, False, True]
    assert (state.runs, state.drifting, state.triggered) == (1, 0, 120)
    assert "PSI 0.500 > maxPsi 0.2 for 3 interval(s) in a row" in (state.message or "")


def test_a_calm_interval_resets_the_count_and_no_reading_keeps_it() -> None:
    _, starts = run([0.5, 0.5, 0.1, 0.5, 0.5])
    assert starts == [False] * 5
    _, starts = run([0.5, None, 0.5, 0.5])
    assert starts == [False, False, False, True]


def test_at_most_one_run_per_cooldown() -> None:
    state, starts = run([0.5] * 9)
    assert starts.count(True) == 1
    assert "cooldown" in (state.message or "")
    later, again = run([0.5] * 3, state, start=120 + 3600)
    assert again == [True, False, False]  # still drifting once the cooldown is over
    assert later.runs == 2


def test_the_drift_is_read_once_an_interval() -> None:
    assert due(POLICY, DriftState(), 0)
    assert not due(POLICY, DriftState(checked=100), 159)
    assert due(POLICY, DriftState(checked=100), 160)


def test_the_run_is_the_parents_spec_owned_by_it_and_says_why() -> None:
    parent = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u-9", "labels": {"app": "iris"}},
        "spec": {"dataset": {"builtin": "iris"}, "schedule": "0 3 * * *"},
    }
    now = datetime.datetime(2026, 12, 2, 3, 4, 5, tzinfo=datetime.UTC)
    created = retraining_run(parent, now, mdep="iris-serving", why="PSI 0.5 > maxPsi 0.2")
    assert created["metadata"]["name"] == "iris-drift-20261202030405"
    assert created["metadata"]["labels"]["app"] == "iris"  # a canary selector follows it
    assert created["metadata"]["annotations"][ANNOTATION_RETRAINED_FOR] == "iris-serving"
    assert created["metadata"]["ownerReferences"][0]["uid"] == "u-9"
    assert "schedule" not in created["spec"]
