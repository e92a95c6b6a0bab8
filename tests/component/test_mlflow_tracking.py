"""MLflow tracking against a real MLflow server on loopback (sqlite backend in tmp_path)."""

from __future__ import annotations

import io
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_operator.api.workload import ExitCode
from tests.corpus import ROOT
from trainer.main import main

from .backends import free_port

pytestmark = pytest.mark.component

MLFLOW = ROOT / ".venv-mlflow" / "bin" / "mlflow"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert MLFLOW.exists(), "the MLflow server is installed by hack/setup.sh (.venv-mlflow)"
    home = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(MLFLOW),
            "server",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--backend-store-uri=sqlite:///{home}/mlflow.db",
            f"--artifacts-destination={home}/artifacts",
            "--workers=1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                log.flush()
                raise RuntimeError((home / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def run(tmp_path: Path, spec: dict[str, Any], name: str = "iris") -> tuple[int, dict[str, Any]]:
    termination = tmp_path / f"termination-{name}"
    code = main(
        spec_json=json.dumps(spec),
        name=name,
        namespace="team-a",
        store=f"file://{tmp_path / 'store'}",
        version="v1",
        termination_log=str(termination),
        out=io.StringIO(),
    )
    return code, json.loads(termination.read_text())


def spec(uri: str, **tracking: Any) -> dict[str, Any]:
    return {
        "dataset": {"builtin": "iris"},
        "model": {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 10},
        },
        "tracking": {"uri": uri, **tracking},
    }


def test_a_run_its_metrics_and_a_registered_version_are_in_mlflow(
    mlflow_server: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    code, result = run(tmp_path, spec(mlflow_server))
    assert code == 0, result
    tracked = result["tracking"]
    assert tracked["experiment"] == "team-a/iris"
    assert tracked["model"] == "team-a-iris"
    assert tracked["alias"] == "tj-iris"
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    found = client.get_run(tracked["runId"])
    assert found.data.metrics["accuracy"] == pytest.approx(result["metrics"]["accuracy"])
    assert found.data.params["n_estimators"] == "10"
    meta = json.loads((tmp_path / "store/team-a/iris/v1/metadata.json").read_text())
    assert found.data.tags["mlops.dev/data-digest"] == meta["dataDigest"]
    assert found.data.tags["mlops.dev/digest"] == result["model"]["digest"]
    version = client.get_model_version_by_alias("team-a-iris", "tj-iris")
    assert version.version == tracked["version"]
    assert version.run_id == tracked["runId"]


def test_an_unreachable_mlflow_warns_unless_required(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    code, result = run(tmp_path, spec(nowhere), name="a")
    assert code == 0
    assert "tracking" not in result
    code, result = run(tmp_path, spec(nowhere, required=True), name="b")
    assert code == ExitCode.TRACKING_FAILED
    assert result["reason"] == "TrackingFailed"
    assert nowhere in result["message"]
