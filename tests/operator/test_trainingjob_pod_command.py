"""The training Pod's command line works: run the real `mlops train` exactly as the Job says.

The container's command, args and env come from the builder unchanged; only what a kubelet
provides is stood in for: the claim's mount (MLOPS_PVC_ROOT points at tmp_path) and the
termination-message file (its path in the args is replaced by a file in tmp_path). The file
then goes through the status code the way the kubelet's copy of it would.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops_operator.api.workload import NON_RETRYABLE_EXIT_CODES, TERMINATION_LOG
from mlops_operator.builders.job import build_job
from mlops_operator.settings import OperatorSettings
from mlops_operator.status.trainingjob import compute
from model_server.artifact import compute_digest
from model_server.store import local_path
from tests.operator.trainingjob_fixtures import job, pod, terminated, trainingjob, true

MLOPS = Path(sys.executable).parent / "mlops"


def run_pod(body: dict[str, Any], tmp_path: Path) -> tuple[int, str]:
    """Runs the Job's container command; returns (exit code, termination message)."""
    spec = build_job(body, OperatorSettings(pvc_root=str(tmp_path / "pvc")))
    container = spec["spec"]["template"]["spec"]["containers"][0]
    log = tmp_path / "termination-log"
    log.touch()  # the kubelet creates the file before the container starts
    args = [str(log) if arg == TERMINATION_LOG else arg for arg in container["args"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    env.update(HOME=str(tmp_path), TMPDIR=str(tmp_path))
    assert container["command"] == ["mlops"]
    done = subprocess.run(
        [str(MLOPS), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return done.returncode, log.read_text()


def test_the_pods_command_trains_and_its_result_becomes_the_status(tmp_path: Path) -> None:
    body = trainingjob()
    code, message = run_pod(body, tmp_path)
    assert code == 0, message
    pods = [pod(phase="Succeeded", state=terminated(0, message))]
    now = datetime.datetime.now(datetime.UTC)
    status, _ = compute(body, job([true("Complete")]), pods, now)
    assert status["phase"] == "Succeeded", status["message"]
    assert status["metrics"]["accuracy"] > 0.9
    assert status["score"].startswith("accuracy=")
    model = status["model"]
    assert model["uri"] == "pvc://mlops-models/team-a/cancer-v1/20261122-100000-0a1b"
    assert model["version"] == "20261122-100000-0a1b"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_PVC_ROOT", str(tmp_path / "pvc"))
        artifact = local_path(model["uri"])
    assert artifact is not None
    assert compute_digest(artifact) == model["digest"]


def test_a_missed_quality_gate_fails_at_once_with_the_numbers(tmp_path: Path) -> None:
    body = trainingjob(qualityGate={"min": {"accuracy": 0.999}})
    code, message = run_pod(body, tmp_path)
    assert code in NON_RETRYABLE_EXIT_CODES
    pods = [pod(phase="Failed", state=terminated(code, message))]
    now = datetime.datetime.now(datetime.UTC)
    status, _ = compute(body, job([true("Failed", "PodFailurePolicy")]), pods, now)
    assert status["phase"] == "Failed"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "QualityGateFailed"
    assert "accuracy" in status["message"]
    assert "0.999" in status["message"]
    assert "model" not in status
