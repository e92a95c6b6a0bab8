"""`mlops serve` against hostile clients, as a real process: idle and slow connections, more
connections than file descriptors, oversized bodies, pipelining clients that leave early,
extreme values; the log stays free of tracebacks and warnings, the events are counted."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_server.testing import http, iris_artifact, wait_ready

pytestmark = pytest.mark.component

MLOPS = str(Path(sys.executable).with_name("mlops"))
ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
INFER = "/v2/models/iris/infer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = log

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def events(self) -> dict[str, float]:
        text = http(self.base, "GET", "/metrics")[1].decode()
        return {
            m.group(1): float(m.group(2))
            for m in re.finditer(r'mlops_server_events_total\{.*?event="(\w+)".*?\} (\S+)', text)
        }

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("iris") / "artifact"
    return directory, iris_artifact(directory)


@contextlib.contextmanager
def serving(
    artifact: tuple[Path, str],
    tmp_path: Path,
    *args: str,
    open_files: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    limit = [] if open_files is None else ["prlimit", f"--nofile={open_files}:{open_files}"]

    with log.open("w") as out:
        process = subprocess.Popen(
            [
                *limit,
                MLOPS,
                "serve",
                f"--model-uri={artifact[0]}",
                f"--model-digest={artifact[1]}",
                "--host=127.0.0.1",
                f"--port={port}",
                "--grpc-port=-1",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "default", **(env or {})},
        )
    server = Server(process, port, log)
    try:
        wait_ready(server.base, timeout=60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (reading what it sends)."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return False


def test_idle_slow_and_partial_connections_are_closed(
    artifact: tuple[Path, str], tmp_path: Path
) -> None:
    with serving(
        artifact, tmp_path, "--header-timeout=1", "--body-timeout=1", "--keep-alive-timeout=1"
    ) as server:
        silent = server.connect()
        half_headers = server.connect()
        half_headers.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n")
        partial_body = server.connect()
        partial_body.sendall(
            b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        )
        kept_alive = server.connect()
        kept_alive.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        for sock in (silent, half_headers, partial_body, kept_alive):
            assert closed_by_server(sock, within=5), "the server kept an idle connection open"
            sock.close()
        assert time.monotonic() - started < 5
        events = server.events()
        assert events["header_timeout"] >= 2
        assert events["body_timeout"] >= 1


def test_more_idle_connections_than_open_files_do_not_lock_out_the_probe(
    artifact: tuple[Path, str], tmp_path: Path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1300:
        pytest.skip(f"this test opens 1,100 connections; the open-file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held: list[socket.socket] = []
    try:
        with serving(artifact, tmp_path, open_files=1024) as server:
            for i in range(1100):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                if i % 2:
                    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")  # half its headers
                held.append(sock)
            # Every probe gets through while the idle connections are held (or being evicted).
            for _ in range(20):
                assert http(server.base, "GET", "/v2/health/ready", timeout=5)[0] == 200
            assert http(server.base, "POST", INFER, ROW, timeout=5)[0] == 200
            assert server.events()["connection_evicted"] >= 100
            assert "Traceback" not in server.output()
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("connection", ["close", "keep-alive", None])
def test_an_oversized_body_gets_413_whatever_the_connection_header(
    artifact: tuple[Path, str], tmp_path: Path, connection: str | None
) -> None:
    with serving(artifact, tmp_path, "--max-request-bytes=65536") as server:
        headers = {"Content-Type": "application/json"}
        if connection is not None:
            headers["Connection"] = connection
        request = urllib.request.Request(
            server.base + INFER, data=b"x" * 4_000_000, headers=headers, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 413
        assert "65536" in json.loads(refused.value.read())["error"]
        assert http(server.base, "GET", "/v2/health/live")[0] == 200


def test_clients_leaving_early_and_extreme_values_leave_no_traceback_or_warning(
    artifact: tuple[Path, str], tmp_path: Path
) -> None:
    body = json.dumps(ROW).encode()
    request = (
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    extreme = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1e308, 1e308, 1, 1]}]
    }
    with serving(artifact, tmp_path, "--runtime=sklearn") as server:
        for _ in range(30):
            sock = server.connect()
            sock.sendall(request * 40)  # pipelined, then gone before the answers
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()
        for _ in range(5):
            assert http(server.base, "POST", INFER, extreme)[0] in (200, 400)
        time.sleep(0.5)
        assert http(server.base, "POST", INFER, ROW)[0] == 200
        events = server.events()
        output = server.output()
    assert "Traceback" not in output
    assert "Warning" not in output
    assert "Exception" not in output
    assert events["numeric_warning"] >= 1


def test_feedback_needs_the_token_and_metrics_have_a_port_of_their_own(
    artifact: tuple[Path, str], tmp_path: Path
) -> None:
    metrics = free_port()
    with serving(
        artifact, tmp_path, f"--metrics-port={metrics}", env={"MLOPS_FEEDBACK_TOKEN": "s3cret"}
    ) as server:
        assert http(server.base, "POST", INFER, {**ROW, "id": "order-1001"})[0] == 200
        feedback = "/v2/models/iris/feedback"
        truth = {"id": "order-1001", "truth": [2]}  # wrong truth: what a forger sends
        status, body = http(server.base, "POST", feedback, truth)
        assert status == 401
        assert body["error"].startswith("feedback needs 'Authorization: Bearer <token>'")
        for forged in ("Bearer forged", "Bearer s3cret2", "Basic s3cret", "s3cret"):
            assert (
                http(server.base, "POST", feedback, truth, headers={"Authorization": forged})[0]
                == 403
            )
        good = http(
            server.base,
            "POST",
            feedback,
            {"id": "order-1001", "truth": [0]},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert good == (
            200,
            {"id": "order-1001", "correct": 1, "incorrect": 0, "absolute_error": None},
        )
        assert http(server.base, "GET", "/metrics")[0] == 404
        metrics_base = f"http://127.0.0.1:{metrics}"
        status, text = http(metrics_base, "GET", "/metrics")
        assert status == 200
        assert (
            'mlops_feedback_total{model="iris",outcome="correct",source="direct",'
            'variant="stable"} 1.0' in text.decode()
        )
        assert http(metrics_base, "POST", INFER, ROW)[0] == 404


request_lines = st.sampled_from(
    [
        b"POST /v2/models/iris/infer HTTP/1.1\r\n",
        b"GET /v2/health/ready HTTP/1.1\r\n",
        b"POST /v2/models/iris/feedback HTTP/1.1\r\n",
        b"GET /metrics HTTP/1.0\r\n",
        b"PUT / HTTP/1.1\r\n",
    ]
)
header_lines = st.lists(
    st.sampled_from(
        [
            b"Host: x\r\n",
            b"Connection: close\r\n",
            b"Connection: keep-alive\r\n",
            b"Content-Length: 10\r\n",
            b"Content-Length: 100000000\r\n",
            b"Content-Length: -1\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Expect: 100-continue\r\n",
            b"Inference-Header-Content-Length: 3\r\n",
        ]
    )
    | st.binary(max_size=40).map(lambda b: b + b"\r\n"),
    max_size=6,
)
raw_requests = st.tuples(request_lines, header_lines, st.binary(max_size=120)).map(
    lambda parts: parts[0] + b"".join(parts[1]) + b"\r\n" + parts[2]
) | st.binary(max_size=200)


@pytest.fixture(scope="module")
def fuzzed(
    artifact: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with serving(
        artifact,
        tmp_path_factory.mktemp("fuzz"),
        "--header-timeout=0.5",
        "--body-timeout=0.5",
        "--keep-alive-timeout=0.5",
    ) as server:
        yield server


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=raw_requests)
def test_raw_bytes_never_get_a_5xx_nor_hang(fuzzed: Server, raw: bytes) -> None:
    sock = fuzzed.connect()
    try:
        with contextlib.suppress(OSError):
            sock.sendall(raw)
        sock.settimeout(3)
        answer = b""
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
        assert time.monotonic() - started < 3, "the server held a malformed connection open"
    except TimeoutError:
        pytest.fail(f"no answer and no close within 3 s for {raw!r}")
    finally:
        sock.close()
    for status in re.findall(rb"HTTP/1\.[01] (\d{3})", answer):
        assert int(status) < 500, answer
