"""Writing artifacts for tests and benchmarks, following the artifact contract.

The trainer writes real artifacts; this helper writes the same format from any fitted
estimator so that tests fit tiny models into a temporary directory instead of committing
binaries.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_server import artifact
from model_server.dataplane import DataPlane
from model_server.settings import ServerSettings


def feature_stats(frame: pd.DataFrame, bins: int = 10) -> dict[str, dict[str, Any]]:
    """Training statistics per column, in metadata.json's featureStats format."""
    stats: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        column = frame[name]
        missing = float(column.isna().mean())
        present = column.dropna()
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = present.to_numpy(dtype=np.float64)
            edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
            index = np.searchsorted(edges, values, side="right")
            counts = np.bincount(index, minlength=len(edges) + 1)
            stats[str(name)] = {
                "kind": "numeric",
                "mean": float(values.mean()),
                "std": float(values.std()),
                "missing": missing,
                "binEdges": edges.tolist(),
                "fractions": (counts / max(len(values), 1)).tolist(),
            }
        else:
            shares = present.astype(str).value_counts(normalize=True)
            stats[str(name)] = {
                "kind": "categorical",
                "missing": missing,
                "fractions": {str(k): float(v) for k, v in shares.items()},
            }
    return stats


def write_artifact(
    directory: Path,
    estimator: Any,
    frame: pd.DataFrame,
    target: pd.Series | np.ndarray[Any, Any],
    *,
    name: str = "model",
    version: str = "1",
    task: str = "classification",
    pickle: bool = False,
    onnx: bool = False,
) -> str:
    """Fit ``estimator`` on ``frame``/``target``, write the artifact and return its digest.

    With ``onnx``, also compile it (checked on ``frame``, as the trainer does on its test set):
    model.onnx is written when the check passes, and metadata.json says how it went.
    """
    import skops.io

    directory.mkdir(parents=True, exist_ok=True)
    estimator.fit(frame, target)
    classes = getattr(estimator, "classes_", None)
    metadata = {
        "format": artifact.FORMAT,
        "name": name,
        "version": version,
        "task": task,
        "estimator": type(estimator).__name__,
        "target": "target",
        "features": [{"name": str(c), "dtype": str(frame[c].dtype)} for c in frame.columns],
        "classes": np.asarray(classes).tolist() if classes is not None else None,
        "dataDigest": "sha256:" + "0" * 64,
        "featureStats": feature_stats(frame),
    }
    meta = artifact.Metadata.model_validate(metadata)
    if onnx and not pickle:
        from model_server.compile import export

        compiled = export(estimator, meta.features, frame, task, meta.classes)
        meta.onnx = compiled.check
        if compiled.model is not None:
            (directory / artifact.ONNX_FILE).write_bytes(compiled.model)
    (directory / artifact.METADATA_FILE).write_text(meta.model_dump_json(by_alias=True))
    if pickle:
        import joblib

        from model_server.model import pickle_digest

        joblib.dump(estimator, directory / "model.joblib")
        digest = pickle_digest(directory, "model.joblib")
    else:
        skops.io.dump(estimator, directory / artifact.MODEL_FILE)
        digest = artifact.compute_digest(directory)
    (directory / artifact.DIGEST_FILE).write_text(digest + "\n")
    return digest


def iris_artifact(directory: Path, *, version: str = "1", onnx: bool = False) -> str:
    """A StandardScaler + LogisticRegression pipeline on iris; returns the digest."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return write_artifact(directory, model, frame, target, name="iris", version=version, onnx=onnx)


@contextlib.contextmanager
def running_server(settings: ServerSettings, data_plane: DataPlane | None = None) -> Iterator[str]:
    """An in-process server on a free loopback port, in a thread; yields its base URL.

    gRPC is off unless ``settings.grpc_port`` is set to something else than its default (0: a
    free port; :func:`running_servers` tells which).
    """
    with running_servers(settings, data_plane) as (base_url, _):
        yield base_url


@contextlib.contextmanager
def running_servers(
    settings: ServerSettings, data_plane: DataPlane | None = None
) -> Iterator[tuple[str, str | None]]:
    """:func:`running_server`, yielding the base URL and the gRPC target (host:port) too."""
    import uvicorn

    from model_server.app import create_app
    from model_server.server import listen, protocol_options

    if "grpc_port" not in settings.model_fields_set:
        settings = settings.model_copy(update={"grpc_port": -1})
    app = create_app(settings, data_plane or DataPlane(settings), on_fatal=lambda: None)
    sockets = listen(settings.model_copy(update={"host": "127.0.0.1", "port": 0}), app)
    port = sockets[0].getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", **protocol_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the in-process server did not start")
        time.sleep(0.01)
    try:
        grpc = f"127.0.0.1:{app.grpc_port}" if app.grpc_port is not None else None
        yield f"http://127.0.0.1:{port}", grpc
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        for sock in sockets:
            sock.close()


def wait_ready(base_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http(base_url, "GET", "/v2/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{base_url} not ready after {timeout}s")


def http(
    base_url: str,
    method: str,
    path: str,
    body: bytes | str | dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """One request; returns the status and the JSON body (or the raw bytes if not JSON)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=timeout
    )
    if isinstance(body, dict):
        body = json.dumps(body)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data
