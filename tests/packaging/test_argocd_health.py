"""Argo CD's health checks (Lua, run by Argo CD's Lua 5.1) against sample statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from .tools import REPO

HEALTH = REPO / "deploy" / "argocd" / "health" / "mlops.dev"
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def to_lua(runtime: Any, value: Any) -> Any:
    """A JSON-like value as Argo CD hands it to Lua: objects and arrays become tables."""
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    runtime = lua51.LuaRuntime(register_eval=False, unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    result = runtime.execute((HEALTH / kind / "health.lua").read_text())
    found = {str(k): str(v) for k, v in dict(result).items()}
    assert found["status"] in ARGO_STATUSES
    assert found.get("message"), "a health check always says why"
    return found


def resource(kind: str, status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "cancer", "namespace": "default", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "Progressing"),
        ({}, "Progressing"),
        ({"phase": "Pending"}, "Progressing"),
        ({"phase": "Running", "attempts": 1}, "Progressing"),
        ({"phase": "Succeeded", "model": {"version": "3", "uri": "pvc://m/x"}}, "Healthy"),
        ({"phase": "Succeeded"}, "Healthy"),
        ({"phase": "Failed", "message": "quality gate: accuracy 0.71 < 0.9"}, "Degraded"),
        (
            {
                "phase": "Failed",
                "conditions": [condition("Succeeded", "False", "QualityGate", "accuracy < 0.9")],
            },
            "Degraded",
        ),
        ({"phase": "Failed"}, "Degraded"),
        ({"phase": "SomethingNew"}, "Progressing"),
    ],
)
def test_trainingjob_health(status: dict[str, Any] | None, expected: str) -> None:
    assert health("TrainingJob", resource("TrainingJob", status))["status"] == expected


def test_trainingjob_messages_name_the_cause() -> None:
    failed = {
        "phase": "Failed",
        "conditions": [condition("Succeeded", "False", "QualityGate", "accuracy 0.7 < 0.9")],
    }
    assert health("TrainingJob", resource("TrainingJob", failed))["message"] == (
        "QualityGate: accuracy 0.7 < 0.9"
    )
    done = {"phase": "Succeeded", "model": {"version": 3}}
    assert health("TrainingJob", resource("TrainingJob", done))["message"] == (
        "Trained model version 3"
    )


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("Stable", "Healthy"),
        ("Promoted", "Healthy"),
        ("Progressing", "Progressing"),
        ("Paused", "Suspended"),
        ("RolledBack", "Degraded"),
        ("Degraded", "Degraded"),
        ("Failed", "Degraded"),
        ("SomethingNew", "Progressing"),
    ],
)
def test_modeldeployment_health(phase: str, expected: str) -> None:
    status = {
        "phase": phase,
        "observedGeneration": 1,
        "conditions": [
            condition("Ready", "True", "Serving", "stable cancer-v1 serves 100%"),
            condition("Progressing", "True", "CanaryStep", "canary at 20%"),
        ],
    }
    assert health("ModelDeployment", resource("ModelDeployment", status))["status"] == expected


def test_a_promotion_handing_off_is_progressing() -> None:
    message = "promotion: the stable servers roll to the promoted model (the canary serves)"
    status = {
        "phase": "Promoted",
        "handoff": {"stage": "roll", "previous": {"uri": "pvc://m/v1", "digest": "sha256:1"}},
        "conditions": [condition("Progressing", "True", "Promoting", message)],
    }
    found = health("ModelDeployment", resource("ModelDeployment", status))
    assert found == {"status": "Progressing", "message": f"Promoting: {message}"}


def test_modeldeployment_without_status_is_progressing() -> None:
    assert health("ModelDeployment", resource("ModelDeployment", None))["status"] == "Progressing"


def test_modeldeployment_rollback_message_is_the_degraded_condition() -> None:
    status = {
        "phase": "RolledBack",
        "conditions": [
            condition("Ready", "True", "Serving", "stable serves 100%"),
            condition("Degraded", "True", "AnalysisFailed", "canary error rate 0.2 > 0.01"),
        ],
    }
    found = health("ModelDeployment", resource("ModelDeployment", status))
    assert found == {
        "status": "Degraded",
        "message": "AnalysisFailed: canary error rate 0.2 > 0.01",
    }


@pytest.mark.parametrize("kind", ["TrainingJob", "ModelDeployment"])
def test_a_spec_not_yet_observed_is_progressing(kind: str) -> None:
    status = {"phase": "Succeeded" if kind == "TrainingJob" else "Stable", "observedGeneration": 1}
    assert health(kind, resource(kind, status, generation=2))["status"] == "Progressing"


def test_argocd_cm_snippet_holds_the_scripts() -> None:
    check = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen-argocd-cm.py"), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout
    snippet = yaml.safe_load((REPO / "deploy" / "argocd" / "argocd-cm.yaml").read_text())
    for kind in ("TrainingJob", "ModelDeployment"):
        script = (HEALTH / kind / "health.lua").read_text()
        assert snippet["data"][f"resource.customizations.health.mlops.dev_{kind}"] == script


def test_example_application_installs_the_chart() -> None:
    apps = list(yaml.safe_load_all((REPO / "examples" / "argocd" / "application.yaml").read_text()))
    operator = next(app for app in apps if app["metadata"]["name"] == "mlops-operator")
    source = operator["spec"]["source"]
    assert (REPO / source["path"] / "Chart.yaml").exists()
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]
    models = next(app for app in apps if app["metadata"]["name"] != "mlops-operator")
    assert Path(REPO / models["spec"]["source"]["path"]).is_dir()
