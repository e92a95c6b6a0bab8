"""`mlops train` as the TrainingJob controller runs it: flags, environment, exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlops_operator.cli import main
from tests.corpus import EXAMPLES, ROOT


def test_train_a_manifest(tmp_path: Path) -> None:
    termination = tmp_path / "termination-log"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "-f",
            str(EXAMPLES / "quickstart" / "01-trainingjob-v1.yaml"),
            "--store",
            f"file://{tmp_path}/models",
            "--version",
            "20261122-101500-abcd",
            "--termination-log",
            str(termination),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(termination.read_text())
    assert document["name"] == "cancer-v1"
    assert document["model"]["uri"] == (
        f"file://{tmp_path}/models/default/cancer-v1/20261122-101500-abcd"
    )
    assert "Succeeded: accuracy=" in result.stdout


def test_spec_and_store_from_the_environment_with_json_logs(tmp_path: Path) -> None:
    spec = {"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}}
    env = {
        "MLOPS_TRAININGJOB_SPEC": json.dumps(spec),
        "MLOPS_TRAININGJOB_NAME": "iris",
        "MLOPS_TRAININGJOB_NAMESPACE": "ml",
        "MLOPS_MODEL_STORE": f"file://{tmp_path}",
        "MLOPS_MODEL_VERSION": "v7",
        "MLOPS_TERMINATION_LOG": str(tmp_path / "termination-log"),
        "MLOPS_LOG_FORMAT": "json",
    }
    result = CliRunner().invoke(main, ["train"], env=env)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[-1]["result"]["model"]["version"] == "v7"
    assert any(line.get("message", "").startswith("fitting SVC") for line in lines[:-1])
    assert (tmp_path / "ml" / "iris" / "v7" / "digest").exists()


def test_nothing_to_train_is_an_invalid_spec(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["train", "--termination-log", str(tmp_path / "t")],
        env={"MLOPS_TRAININGJOB_SPEC": ""},
    )
    assert result.exit_code == 2
    assert "nothing to train" in json.loads((tmp_path / "t").read_text())["message"]


def test_spec_json_needs_a_name_and_a_store(tmp_path: Path) -> None:
    spec = json.dumps({"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}})
    result = CliRunner().invoke(main, ["train", "--spec-json", spec, "--store", "file:///tmp"])
    assert result.exit_code == 2
    assert "--name" in result.output
    result = CliRunner().invoke(main, ["train", "--spec-json", spec, "--name", "x"])
    assert result.exit_code == 2
    assert "no model store" in result.output


def test_a_version_must_be_a_plain_name(tmp_path: Path) -> None:
    spec = json.dumps({"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}})
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--spec-json",
            spec,
            "--name",
            "x",
            "--store",
            f"file://{tmp_path}",
            "--version",
            "../escape",
        ],
    )
    assert result.exit_code == 2
    assert "--version" in result.output
    assert not any(tmp_path.iterdir())


def test_malformed_spec_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["train", "--spec-json", "{nope", "--name", "x"])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output


@pytest.mark.component
def test_the_process_exit_code_of_a_failing_gate(tmp_path: Path) -> None:
    spec = {
        "dataset": {"builtin": "wine"},
        "model": {"estimator": "sklearn.dummy.DummyClassifier"},
        "qualityGate": {"min": {"accuracy": 0.9}},
    }
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "mlops"),
            "train",
            "--name",
            "wine",
            "--store",
            f"file://{tmp_path}/models",
            "--termination-log",
            str(tmp_path / "t"),
        ],
        env={**os.environ, "MLOPS_TRAININGJOB_SPEC": json.dumps(spec)},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 10, completed.stderr
    assert "quality gate failed: accuracy" in completed.stdout
    assert "fitting DummyClassifier" in completed.stderr
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*"))


@pytest.mark.component
def test_sigterm_still_reports_and_leaves_nothing(tmp_path: Path) -> None:
    spec = {
        "dataset": {"builtin": "digits"},
        "model": {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 5000},
        },
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlops"),
            "train",
            "--name",
            "slow",
            "--store",
            f"file://{tmp_path}/models",
            "--termination-log",
            str(tmp_path / "t"),
        ],
        env={**os.environ, "MLOPS_TRAININGJOB_SPEC": json.dumps(spec)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "fitting" in line:
            break
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 12, stdout
    result = json.loads((tmp_path / "t").read_text())
    assert result["reason"] == "Terminated"
    assert "SIGTERM" in result["message"]
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*"))


@pytest.mark.parametrize("store", ["s3://", "s3:///models", "pvc:///models", "gs://models"])
def test_a_store_without_a_bucket_or_claim_is_an_invalid_store(tmp_path: Path, store: str) -> None:
    spec = json.dumps({"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}})
    log = tmp_path / "t"
    args = ["train", "--spec-json", spec, "--name", "x", "--store", store]
    result = CliRunner().invoke(main, [*args, "--termination-log", str(log)])
    assert result.exit_code == 13
    reported = json.loads(log.read_text())
    assert reported["reason"] == "InvalidStore"
    assert f"model store {store!r}" in reported["message"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"output": {"uri": "s3://"}}, "output.uri: a model store"),
        ({"split": {"seed": 5_000_000_000}}, "split.seed"),
        ({"dataset": {"uri": "file:///d.csv", "target": "t" * 65536}}, "dataset.target"),
        ({"model": {"estimator": "sklearn.svm.SVC", "params": {"x": "y" * 40000}}}, "model.params"),
    ],
)
def test_a_spec_out_of_bounds_is_an_invalid_spec_naming_the_field(
    tmp_path: Path, spec: dict[str, object], says: str
) -> None:
    full = {"dataset": {"builtin": "iris"}, "model": {"estimator": "sklearn.svm.SVC"}, **spec}
    log = tmp_path / "t"
    args = ["train", "--spec-json", json.dumps(full), "--name", "x", "--store", "file:///tmp"]
    result = CliRunner().invoke(main, [*args, "--termination-log", str(log)])
    assert result.exit_code == 2
    reported = json.loads(log.read_text())
    assert reported["reason"] == "InvalidSpec"
    assert says in reported["message"]
