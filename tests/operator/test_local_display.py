"""`mlops local status` as a person reads it: one line per variant, the verdict where it
belongs, nothing claimed ready after the run stopped."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from mlops_operator.local import display

pytestmark = pytest.mark.unit


def state(running: bool) -> dict[str, Any]:
    variant = {"model": "cancer-v1", "replicas": 1, "readyReplicas": 1, "weight": 80}
    return {
        "running": running,
        "stopped": None if running else "2026-12-02T01:00:00Z",
        "modelDeployments": {
            "cancer": {
                "status": {
                    "phase": "Progressing",
                    "url": "http://127.0.0.1:40000/v2/models/cancer",
                    "stable": variant,
                    "canary": {**variant, "model": "cancer-v2", "weight": 20},
                    "analysis": {
                        "verdict": "Passed",
                        "canary": {"requests": 40, "errorRate": 0.0, "accuracy": 0.975},
                    },
                }
            }
        },
    }


def shown(doc: dict[str, Any]) -> list[str]:
    console = Console(width=100, record=True)
    console.print(display.screen(doc))
    return console.export_text().splitlines()


def test_status_rows_fit_and_name_the_verdict_in_the_phase_row() -> None:
    lines = shown(state(running=True))
    canary = next(line for line in lines if "cancer-v2" in line)
    assert "1/1" in canary
    assert "97.5%" in canary
    phase = next(line for line in lines if "Progressing" in line)
    assert "last analysis: Passed" in phase
    assert lines[-1] == "running"
    assert not any("Passed" in line and "97.5%" in line for line in lines)


def test_a_stopped_run_claims_nothing_ready() -> None:
    lines = shown(state(running=False))
    canary = next(line for line in lines if "cancer-v2" in line)
    assert "1/1" not in canary
    assert lines[-1].startswith("not running (stopped 2026-12-02T01:00:00Z)")


def test_a_stable_only_deployment_shows_what_its_server_counted() -> None:
    doc = state(running=True)
    deployment = doc["modelDeployments"]["cancer"]
    deployment["status"].pop("canary")
    deployment["status"]["analysis"] = None
    deployment["served"] = {"stable": {"requests": 35, "errorRate": 0.0, "accuracy": 0.75}}
    stable = next(line for line in shown(doc) if "cancer-v1" in line)
    assert "35" in stable
    assert "75.0%" in stable
