"""`mlops serve` as a real process: digest refusal, graceful shutdown on SIGTERM, workers."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_server.testing import http, iris_artifact, wait_ready

pytestmark = pytest.mark.component

MLOPS = str(Path(sys.executable).with_name("mlops"))
BODY = {
    "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("iris") / "artifact"
    return directory, iris_artifact(directory)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def port() -> int:
    return free_port()


def serve(
    artifact: tuple[Path, str], port: int, *args: str, digest: str | None = None
) -> subprocess.Popen[str]:
    env = {**os.environ, "MLOPS_PVC_ROOT": str(artifact[0].parent.parent)}
    return subprocess.Popen(
        [
            MLOPS,
            "serve",
            f"--model-uri=pvc://{artifact[0].parent.name}/{artifact[0].name}",
            f"--model-digest={digest or artifact[1]}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--grpc-port=0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


@pytest.fixture
def stopper() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_refuses_a_digest_mismatch(
    artifact: tuple[Path, str], port: int, stopper: list[subprocess.Popen[str]]
) -> None:
    process = serve(artifact, port, digest="sha256:" + "0" * 64)
    stopper.append(process)
    ready_seen = False
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            ready_seen |= http(f"http://127.0.0.1:{port}", "GET", "/v2/health/ready")[0] == 200
        time.sleep(0.05)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 1, output
    assert not ready_seen
    assert "refusing to serve" in output
    assert "sha256:" + "0" * 64 in output


def test_sigterm_drains_in_flight_requests(
    artifact: tuple[Path, str], port: int, stopper: list[subprocess.Popen[str]]
) -> None:
    # A long batching wait keeps requests in flight long enough to send SIGTERM among them.
    process = serve(artifact, port, "--max-batch-wait=3", "--max-batch-size=1000")
    stopper.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, timeout=60)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(http, base, "POST", "/v2/models/iris/infer", BODY) for _ in range(8)]
        time.sleep(1.5)  # the requests reached the server and wait in the batch queue
        assert not any(f.done() for f in futures)
        process.send_signal(signal.SIGTERM)
        results = [f.result(timeout=30) for f in futures]
    assert [status for status, _ in results] == [200] * 8
    assert all(body["outputs"][0]["data"] == [0] for _, body in results)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    with pytest.raises(ConnectionRefusedError):
        http(base, "GET", "/v2/health/live", timeout=2)


def test_several_workers(
    artifact: tuple[Path, str], port: int, stopper: list[subprocess.Popen[str]]
) -> None:
    process = serve(artifact, port, "--workers=2")
    stopper.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, timeout=90)
    for _ in range(10):
        assert http(base, "POST", "/v2/models/iris/infer", BODY)[0] == 200
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output


def test_workers_refuse_a_digest_mismatch_up_front(
    artifact: tuple[Path, str], port: int, stopper: list[subprocess.Popen[str]]
) -> None:
    process = serve(artifact, port, "--workers=2", digest="sha256:" + "f" * 64)
    stopper.append(process)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 1, output
    assert "refusing to serve" in output


def test_sigterm_drains_keep_alive_clients_that_never_retry(
    artifact: tuple[Path, str], port: int, stopper: list[subprocess.Popen[str]]
) -> None:
    """After SIGTERM the server goes on answering (not ready, Connection: close) for
    drain_seconds: steady keep-alive clients that never retry lose nothing."""
    import http.client as httpclient
    import json
    import threading

    process = serve(artifact, port, "--drain-seconds=2")
    stopper.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, timeout=60)
    body = json.dumps(BODY)
    told_to_close = threading.Event()
    outcomes: list[str] = []

    def client() -> None:
        connection = httpclient.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            try:  # one attempt per request: no retry of any kind
                connection.request("POST", "/v2/models/iris/infer", body)
                response = connection.getresponse()
                response.read()
                outcomes.append(str(response.status))
            except OSError as error:
                outcomes.append(type(error).__name__)
                return
            if response.getheader("connection") == "close":
                told_to_close.set()
                deadline = deadline or time.monotonic() + 0.5
            elif told_to_close.is_set() and deadline is None:
                deadline = time.monotonic() + 0.5
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    for thread in threads:
        thread.join(timeout=30)
    assert told_to_close.is_set()
    assert http(base, "GET", "/v2/health/ready")[0] == 503  # draining: out of the endpoints
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert 1.5 < time.monotonic() - started < 10
    failed = [o for o in outcomes if o != "200"]
    assert failed == [], f"{len(failed)} of {len(outcomes)} requests failed: {set(failed)}"
