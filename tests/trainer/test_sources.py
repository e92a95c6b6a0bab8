"""Data and model stores beyond a local file: Parquet, http(s):// and s3:// on real servers."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from model_server.artifact import compute_digest
from model_server.store import fetch_directory
from tests.trainer.conftest import CHURN_CSV, Trainer, churn_spec


def test_csv_with_categorical_columns_and_missing_values(train: Trainer, churn_pvc: str) -> None:
    run = train(churn_spec(churn_pvc))
    assert run.code == 0, run.result["message"]
    assert run.result["data"]["maxMissingFraction"] > 0.05
    assert run.result["metrics"]["accuracy"] > 0.7
    assert "roc_auc" in run.result["metrics"]


def test_dates_are_left_out_and_identifiers_flagged(train: Trainer, tmp_path: Path) -> None:
    """A signup date (one value per day) would be one-hot encoded into a column per day and
    then look like drift on every new day: it is left out, with a line saying so; an id-like
    text column is kept but flagged."""
    frame = pd.read_csv(CHURN_CSV)
    frame["signup"] = pd.date_range("2024-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
    frame["seen_at"] = pd.date_range("2024-01-01T08:00:00", periods=len(frame), freq="h").map(
        lambda stamp: stamp.isoformat() + "Z"
    )
    frame["customer"] = [f"c-{i:05d}" for i in range(len(frame))]
    path = tmp_path / "churn-dated.csv"
    frame.to_csv(path, index=False)
    run = train(churn_spec(f"file://{path}"))
    assert run.code == 0, run.result["message"]
    warnings = " ".join(run.result.get("warnings") or [])
    assert "column 'signup' left out: a date or timestamp" in warnings
    assert "column 'seen_at' left out" in warnings
    assert "categorical column 'customer' has 400 distinct values in 400 rows" in warnings
    (version,) = (run.store / "team-a" / "job").iterdir()
    metadata = json.loads((version / "metadata.json").read_text())
    names = [feature["name"] for feature in metadata["features"]]
    assert "signup" not in names
    assert "seen_at" not in names
    assert "customer" in names
    assert set(metadata["dataReport"]["droppedColumns"]) == {"signup", "seen_at"}


def test_parquet_file(train: Trainer, tmp_path: Path) -> None:
    path = tmp_path / "churn.parquet"
    pd.read_csv(CHURN_CSV).to_parquet(path)
    run = train(churn_spec(f"file://{path}"))
    assert run.code == 0, run.result["message"]
    assert run.result["data"]["rows"] == 400


def test_ordinal_encoding_and_explicit_categorical_columns(train: Trainer, churn_pvc: str) -> None:
    spec = churn_spec(
        churn_pvc,
        preprocessing={
            "scaling": "minmax",
            "categorical": "ordinal",
            "categoricalColumns": ["support_calls"],
            "imputation": {"numeric": "mean", "categorical": "constant"},
        },
    )
    run = train(spec)
    assert run.code == 0, run.result["message"]
    metadata = json.loads((run.artifact() / "metadata.json").read_text())
    features = {f["name"]: f["dtype"] for f in metadata["features"]}
    assert features["support_calls"] == "object"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


@pytest.mark.component
def test_csv_over_http(train: Trainer, http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "churn.csv").write_bytes(CHURN_CSV.read_bytes())
    run = train(churn_spec(f"{base}/churn.csv"))
    assert run.code == 0, run.result["message"]
    assert run.result["data"]["rows"] == 400


@pytest.mark.component
def test_http_not_found_is_unreadable(train: Trainer, http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    run = train(churn_spec(f"{base}/missing.csv"))
    assert run.code == 3
    assert "missing.csv" in run.result["message"]
    assert run.files_in_store() == []


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto) on loopback."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """A fresh S3 (the server reset) with a bucket of data and an empty bucket for models."""
    import s3fs

    request = urllib.request.Request(f"{s3_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLOPS_S3_ENDPOINT_URL": s3_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, skip_instance_cache=True)
    fs.mkdir("data")
    fs.mkdir("models")
    fs.pipe("data/churn.csv", CHURN_CSV.read_bytes())
    return fs


@pytest.mark.component
def test_s3_data_and_model_store(train: Trainer, s3: object, tmp_path: Path) -> None:
    import s3fs

    assert isinstance(s3, s3fs.S3FileSystem)
    run = train(churn_spec("s3://data/churn.csv"), store="s3://models")
    assert run.code == 0, run.result["message"]
    model = run.result["model"]
    assert model["uri"] == "s3://models/team-a/job/v1"
    s3.invalidate_cache()
    assert sorted(p.rsplit("/", 1)[1] for p in s3.ls("models/team-a/job/v1")) == [
        "digest",
        "metadata.json",
        "model.onnx",
        "model.skops",
        "report.html",
    ]
    local = fetch_directory(model["uri"], tmp_path / "fetched")
    assert compute_digest(local) == model["digest"]
    assert (local / "digest").read_text().strip() == model["digest"]

    again = train(churn_spec("s3://data/churn.csv"), store="s3://models")
    assert again.code == 11
    assert "already exists" in again.result["message"]


@pytest.mark.component
def test_s3_missing_object_and_bucket(train: Trainer, s3: object) -> None:
    run = train(churn_spec("s3://data/nope.csv"), store="s3://models")
    assert run.code == 3
    assert "nope.csv" in run.result["message"]
    run = train(churn_spec("s3://data/churn.csv"), store="s3://no-such-bucket")
    assert run.code == 11
    assert "no-such-bucket" in run.result["message"]
