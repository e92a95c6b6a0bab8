"""`mlops get` and `mlops history` as text, from a status."""

from __future__ import annotations

import pytest

from mlops_operator.status import view

pytestmark = pytest.mark.unit

BODY = {
    "metadata": {"name": "iris", "namespace": "ml"},
    "spec": {"traffic": {"steps": [20, 50]}},
    "status": {
        "phase": "Progressing",
        "canaryWeight": 50,
        "message": "canary at 50%",
        "stable": {"model": "iris-v1", "digest": "sha256:" + "a" * 64, "weight": 50},
        "canary": {"model": "iris-v2", "digest": "sha256:" + "b" * 64, "weight": 50},
        "analysis": {
            "judged": "2026-12-02T03:21:07.5Z",
            "weight": 50,
            "verdict": "Passed",
            "canary": {"requests": 82, "errorRate": 0.0, "latencyP99Ms": 9.8},
            "stable": {"requests": 80, "errorRate": 0.01},
        },
        "conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "ok"}],
        "history": [
            {"model": "iris-v2", "digest": "sha256:" + "b" * 64, "started": "t0", "outcome": None}
        ],
    },
}


def test_the_view_names_variants_weights_numbers_and_conditions() -> None:
    earlier = ("03:20:37", "20%", "Passed", "req=40 err=0.00%", "-")
    text = view.render(BODY, [earlier])
    assert "Phase:     Progressing" in text
    assert "canary   iris-v2  bbbbbbbbbbbb  0/0    50%" in text
    rows = text.split("Analysis:")[1].split("Conditions:")[0].strip().splitlines()
    assert rows[0].split() == ["JUDGED", "WEIGHT", "VERDICT", "CANARY", "STABLE"]
    assert rows[1].startswith("03:20:37  20%")
    assert rows[2].split()[:3] == ["03:21:07", "50%", "Passed"]
    assert "req=82 err=0.00% p99=10ms" in rows[2]
    assert "req=80 err=1.00%" in rows[2]
    assert "Ready  True    Serving  ok" in text


def test_the_last_interval_is_not_shown_twice() -> None:
    row = view.interval(BODY["status"])
    assert row is not None
    assert view.render(BODY, [row]).count("03:21:07") == 1


def test_history_lists_rollouts_with_an_open_one_progressing() -> None:
    lines = view.history(BODY).splitlines()
    assert lines[1].split()[2:5] == ["iris-v2", "bbbbbbbbbbbb", "Progressing"]
    assert view.history({"status": {}}) == "no rollouts yet"
