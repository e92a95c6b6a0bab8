"""`mlops local` end to end: the examples through the CLI, real training, real model servers,
real nginx, the operator's state machine on real metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_operator.local.processes import pid_alive
from tests.corpus import EXAMPLES

pytestmark = pytest.mark.component


def mlops(*args: str, home: Path) -> list[str]:
    return [sys.executable, "-m", "mlops_operator", "local", *args, "--home", str(home)]


def status(home: Path) -> dict[str, Any]:
    out = subprocess.run(
        mlops("status", "-o", "json", home=home), capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def run_watching(home: Path, *args: str, timeout: float = 400) -> tuple[int, set[int], list[str]]:
    """Run `mlops local up`, polling `status` from this (second) process while it works.

    Returns the exit code, every child pid status reported, and the phases it saw."""
    up = subprocess.Popen(
        mlops("up", *args, home=home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    pids: set[int] = set()
    phases: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while up.poll() is None and time.monotonic() < deadline:
            if (home / "state.json").exists():
                seen = status(home)
                if seen["running"]:
                    pids |= set(seen["processes"].values())
                    for deployment in seen["modelDeployments"].values():
                        phase = deployment["status"].get("phase")
                        if phase and (not phases or phases[-1] != phase):
                            phases.append(phase)
            time.sleep(1)
        output = up.communicate(timeout=max(1, deadline - time.monotonic()))[0]
    finally:
        if up.poll() is None:
            up.kill()
    print(output.decode())
    return up.returncode, pids, phases


def assert_all_gone(pids: set[int]) -> None:
    assert pids, "status never reported a child process"
    alive = [pid for pid in pids if pid_alive(pid)]
    assert alive == [], f"child processes outlived the run: {alive}"


def test_quickstart_promotes_with_traffic_on_both_variants(tmp_path: Path) -> None:
    code, pids, phases = run_watching(
        tmp_path, "-f", str(EXAMPLES / "quickstart"), "--traffic", "20"
    )
    assert code == 0
    final = status(tmp_path)
    assert final["running"] is False
    jobs = final["trainingJobs"]
    assert {jobs[name]["phase"] for name in ("cancer-v1", "cancer-v2")} == {"Succeeded"}
    deployment = final["modelDeployments"]["cancer"]
    assert deployment["status"]["phase"] == "Promoted"
    assert "Progressing" in phases, "a second process saw the rollout under way"
    assert deployment["status"]["stable"]["model"] == "cancer-v2"
    served = deployment["traffic"]["byVariant"]
    assert served.get("stable", 0) > 0
    assert served.get("canary", 0) > 0
    assert deployment["traffic"]["failed"] == 0
    assert_all_gone(pids)


def test_bad_model_is_rolled_back_with_the_reason(tmp_path: Path) -> None:
    code, pids, _ = run_watching(
        tmp_path, "-f", str(EXAMPLES / "rollback"), "--traffic", "20", "--interval", "5s"
    )
    assert code == 2
    status_now = status(tmp_path)["modelDeployments"]["wine"]["status"]
    assert status_now["phase"] == "RolledBack"
    assert status_now["canaryWeight"] == 0
    assert "canary" not in status_now
    assert "accuracy" in status_now["message"]
    assert "minAccuracy 0.8" in status_now["message"] or "< 0.8" in status_now["message"]
    degraded = [c for c in status_now["conditions"] if c["type"] == "Degraded"]
    assert degraded[0]["status"] == "True"
    assert_all_gone(pids)


STABLE_ONLY = """
apiVersion: mlops.dev/v1alpha1
kind: TrainingJob
metadata: {name: iris}
spec:
  dataset: {builtin: iris}
  model: {estimator: sklearn.tree.DecisionTreeClassifier, params: {max_depth: 3}}
---
apiVersion: mlops.dev/v1alpha1
kind: ModelDeployment
metadata: {name: iris}
spec:
  stable: {model: {trainingJob: iris}}
"""


def test_down_from_another_terminal_stops_a_watching_run(tmp_path: Path) -> None:
    manifest = tmp_path / "iris.yaml"
    manifest.write_text(STABLE_ONLY)
    home = tmp_path / "home"
    up = subprocess.Popen(mlops("up", "-f", str(manifest), "--watch", home=home))
    try:
        deadline = time.monotonic() + 180
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if (home / "state.json").exists():
                seen = status(home)
                if seen["modelDeployments"].get("iris", {}).get("status", {}).get("phase"):
                    break
            time.sleep(0.5)
        assert seen["modelDeployments"]["iris"]["status"]["phase"] == "Stable"
        pids = set(seen["processes"].values())
        assert len(pids) == 2  # the model server and nginx
        down = subprocess.run(mlops("down", home=home), capture_output=True, text=True, check=False)
        assert down.returncode == 0
        assert up.wait(timeout=30) == 0
        assert_all_gone(pids)
    finally:
        if up.poll() is None:
            up.kill()


def test_up_with_an_invalid_manifest_fails_with_one_line(tmp_path: Path) -> None:
    bad = Path(__file__).parents[1] / "data" / "invalid" / "05-weight-and-steps.yaml"
    result = subprocess.run(
        mlops("up", "-f", str(bad), home=tmp_path), capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "set canaryWeight (a manual split) or steps" in result.stderr


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("5x", "'5x' is not a number followed by ms, s, m or h"),
        ("0s", "'0s' must be longer than 0"),
    ],
)
def test_interval_must_be_a_positive_duration(tmp_path: Path, value: str, why: str) -> None:
    argv = mlops("up", "-f", str(EXAMPLES / "rollback"), "--interval", value, home=tmp_path)
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert f"Invalid value for '--interval': duration {why}" in result.stderr
    assert not (tmp_path / "state.json").exists()  # refused before anything started


def test_status_without_a_run_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        mlops("status", home=tmp_path), capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "nothing has run" in result.stderr
    assert os.listdir(tmp_path) == []


def test_ab_test_and_shadow_reuse_earlier_models_and_end(tmp_path: Path) -> None:
    """The A/B and shadow examples as the docs run them: alone they name the TrainingJob to
    add; after the models were trained in the same home they reuse them, are judged for
    --analyses intervals and end, each variant with its own online accuracy."""
    alone = subprocess.run(
        mlops("up", "-f", str(EXAMPLES / "modeldeployment-abtest.yaml"), home=tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert alone.returncode == 1
    assert alone.stderr.count("\n") == 1, alone.stderr
    assert "spec.stable.model.trainingJob cancer-v1 is neither in the manifests" in alone.stderr
    assert "Traceback" not in alone.stdout + alone.stderr
    quickstart = EXAMPLES / "quickstart"
    train = mlops(
        "up", "-f", str(quickstart / "01-trainingjob-v1.yaml"), "-f",
        str(quickstart / "02-trainingjob-v2.yaml"), home=tmp_path,
    )  # fmt: skip
    assert subprocess.run(train, capture_output=True, check=False).returncode == 0
    up = mlops(
        "up", "-f", str(EXAMPLES / "modeldeployment-abtest.yaml"), "-f",
        str(EXAMPLES / "modeldeployment-shadow.yaml"), "--traffic", "20", "--analyses", "1",
        "--interval", "8s", home=tmp_path,
    )  # fmt: skip
    result = subprocess.run(up, capture_output=True, text=True, check=False, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cancer-v1: reusing the model trained earlier" in result.stdout
    final = status(tmp_path)["modelDeployments"]
    ab, shadow = final["cancer-ab"]["status"], final["cancer-shadow"]["status"]
    assert ab["phase"] == shadow["phase"] == "Progressing"
    assert ab["canary"]["weight"] == 30
    assert shadow["canary"]["weight"] == 100  # its share of mirrored traffic
    for judged in (ab, shadow):
        assert judged["analysis"]["verdict"] in ("Passed", "Failed")
        assert judged["analysis"]["stable"]["accuracy"] is not None
        assert judged["analysis"]["canary"]["accuracy"] is not None


def test_a_rollout_without_traffic_says_how_to_send_some(tmp_path: Path) -> None:
    up = subprocess.Popen(
        mlops("up", "-f", str(EXAMPLES / "rollback"), "--interval", "5s", home=tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, hints = time.monotonic() + 240, []
        while time.monotonic() < deadline and not hints:
            if (tmp_path / "state.json").exists():
                hints = [e for e in status(tmp_path).get("events", []) if "hint:" in e]
            time.sleep(1)
        assert hints, "no hint while every step was held"
        assert "--traffic 20" in hints[0]
        assert "/v2/models/wine/infer" in hints[0]
        subprocess.run(mlops("down", home=tmp_path), capture_output=True, check=True)
        output, _ = up.communicate(timeout=60)
        assert output.count("hint:") == 1  # said once, not every interval
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()


BLUE_GREEN = """
apiVersion: mlops.dev/v1alpha1
kind: TrainingJob
metadata: {name: iris-v1}
spec:
  dataset: {builtin: iris}
  model: {estimator: sklearn.tree.DecisionTreeClassifier, params: {max_depth: 2}}
---
apiVersion: mlops.dev/v1alpha1
kind: TrainingJob
metadata: {name: iris-v2}
spec:
  dataset: {builtin: iris}
  model: {estimator: sklearn.tree.DecisionTreeClassifier, params: {max_depth: 4}}
---
apiVersion: mlops.dev/v1alpha1
kind: ModelDeployment
metadata: {name: iris}
spec:
  stable: {model: {trainingJob: iris-v1}}
  canary: {model: {trainingJob: iris-v2}}
  strategy: blueGreen
  blueGreen: {scaleDownDelay: 3s}
  traffic: {interval: 3s}
  analysis: {minRequests: 10, maxErrorRate: 0.01}
"""


def test_blue_green_runs_locally_preview_switch_promote(tmp_path: Path) -> None:
    """The preview gets its own traffic through the router (the override header), is judged,
    takes all live traffic at once, and is promoted after the scale-down delay."""
    manifest = tmp_path / "bluegreen.yaml"
    manifest.write_text(BLUE_GREEN)
    code, pids, phases = run_watching(tmp_path, "-f", str(manifest), "--traffic", "20")
    assert code == 0
    final = status(tmp_path)["modelDeployments"]["iris"]
    assert final["status"]["phase"] == "Promoted"
    assert final["status"]["stable"]["model"] == "iris-v2"
    assert final["status"]["analysis"]["verdict"] == "Passed"
    assert final["status"]["history"][-1]["outcome"] == "Promoted"
    assert final["traffic"]["byVariant"].get("canary", 0) > 0
    assert "Progressing" in phases
    assert_all_gone(pids)


def test_the_drift_retrain_example_closes_the_loop(tmp_path: Path) -> None:
    """drift -> retrain -> gate -> canary -> promote, as examples/drift-retrain/README.md runs
    it: one run trained because of the drift, its model rolled out and promoted."""
    code, pids, phases = run_watching(
        tmp_path,
        "-f",
        str(EXAMPLES / "drift-retrain"),
        "--traffic",
        "20",
        "--drift-after",
        "10",
        timeout=500,
    )
    assert code == 0
    final = status(tmp_path)
    runs = [name for name in final["trainingJobs"] if name.startswith("iris-train-drift-")]
    assert len(runs) == 1, final["trainingJobs"].keys()
    deployment = final["modelDeployments"]["iris"]["status"]
    assert deployment["phase"] == "Promoted"
    assert deployment["stable"]["model"] == runs[0]
    retraining = deployment["retraining"]
    assert retraining["runs"] == 1
    assert retraining["run"] == runs[0]
    assert "maxPsi 1 for 3 interval(s) in a row" in retraining["message"]
    assert "Progressing" in phases
    assert_all_gone(pids)
