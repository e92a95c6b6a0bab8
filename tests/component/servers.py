"""Real model-server processes (`mlops serve`) on loopback, and a client for them.

The servers are given ROUTER_TOKEN and the client sends it as the builtin router does
(``X-Mlops-Router``): the traffic these helpers send stands for the router's, which is what an
analysis behind the builtin router counts (source="router"). ``as_router=False`` sends a
client's own request instead (source="direct")."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from model_server.metric_names import ROUTER_HEADER

from .backends import free_port

REPO = Path(__file__).resolve().parents[2]
MLOPS = Path(sys.executable).parent / "mlops"
GOOD_ROW = [5.1, 3.5, 1.4, 0.2]
BAD_ROW = [-1.0, 3.5, 1.4, 0.2]
"""FaultyClassifier raises on it: a 500."""
ROUTER_TOKEN = "loopback-router-token-0123456789"
"""The servers' MLOPS_ROUTER_TOKEN, unless a test gives its own."""
AS_ROUTER = {ROUTER_HEADER: ROUTER_TOKEN}


def iris_artifacts(directory: Path) -> dict[str, tuple[str, str]]:
    """{"good": (uri, digest), "faulty": (uri, digest)} fitted into ``directory``."""
    from sklearn.datasets import load_iris

    from model_server.testing import iris_artifact, write_artifact

    from .faulty import FaultyClassifier

    good = directory / "good"
    faulty = directory / "faulty"
    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    return {
        "good": (str(good), iris_artifact(good)),
        "faulty": (
            str(faulty),
            write_artifact(faulty, FaultyClassifier(), frame, target, name="iris", pickle=True),
        ),
    }


@dataclass
class Server:
    variant: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"


def request(
    port: int,
    method: str,
    path: str,
    body: object = None,
    conn: http.client.HTTPConnection | None = None,
    *,
    as_router: bool = True,
) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(AS_ROUTER if as_router else {})}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


def infer(
    port: int,
    row: list[float],
    model: str = "iris",
    conn: http.client.HTTPConnection | None = None,
    *,
    as_router: bool = True,
) -> int:
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}]}
    return request(port, "POST", f"/v2/models/{model}/infer", body, conn, as_router=as_router)[0]


def send(port: int, count: int, bad_every: int = 0, *, as_router: bool = True) -> dict[int, int]:
    """``count`` requests over one connection; every ``bad_every``-th one fails on purpose."""
    codes: dict[int, int] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(count):
            bad = bad_every > 0 and i % bad_every == 0
            code = infer(port, BAD_ROW if bad else GOOD_ROW, conn=conn, as_router=as_router)
            codes[code] = codes.get(code, 0) + 1
    finally:
        conn.close()
    return codes


@contextmanager
def model_server(
    uri: str,
    digest: str,
    variant: str,
    name: str = "iris",
    log: Path | None = None,
    *,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """`mlops serve` as its own process, ready when this yields."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}:{REPO / 'operator'}",
        "MLOPS_LOG_LEVEL": "warning",
        "MLOPS_ROUTER_TOKEN": ROUTER_TOKEN,
        **(extra_env or {}),
    }
    argv = [
        str(MLOPS),
        "serve",
        "--model-uri",
        uri,
        "--model-digest",
        digest,
        "--model-name",
        name,
        "--variant",
        variant,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        "0",
        "--allow-pickle",
    ]
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    server = Server(variant, port, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlops serve exited with {process.returncode}")
            try:
                if request(port, "GET", "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlops serve did not become ready")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log and not isinstance(out, int):
            out.close()
