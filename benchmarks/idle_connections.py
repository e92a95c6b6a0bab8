"""The memory of a model server held by idle connections.

    python -m benchmarks.idle_connections [--connections 1000] [--hold 5] [--json]

Starts `mlops serve` on the iris pipeline (ONNX runtime), reads its resident memory (VmRSS
from /proc) once it is ready, opens N connections that send nothing (half of them half a
request line), waits, reads it again, and checks a probe still gets 200 while they are held
(with the default cap of 1,000 connections a probe beyond it evicts the longest-idle one).
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from model_server.testing import iris_artifact


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{base} not ready after {timeout}s")


def probe(base: str) -> int:
    with urllib.request.urlopen(base + "/v2/health/ready", timeout=5) as response:
        status: int = response.status
        return status


def measure(connections: int, hold: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) / "iris"
        digest = iris_artifact(directory, onnx=True)
        port = free_port()
        mlops = str(Path(sys.executable).with_name("mlops"))
        server = subprocess.Popen(
            [
                mlops,
                "serve",
                f"--model-uri={directory}",
                f"--model-digest={digest}",
                "--host=127.0.0.1",
                f"--port={port}",
                "--grpc-port=-1",
                f"--header-timeout={hold + 60}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return held(("127.0.0.1", port), server.pid, connections, hold)
        finally:
            server.terminate()
            server.wait(timeout=30)


def held(address: tuple[str, int], pid: int, connections: int, hold: float) -> dict[str, object]:
    """The resident memory of the server `pid` listening on `address`, before and while it
    holds `connections` idle connections for `hold` seconds (under its header timeout), and
    probes sent meanwhile. Also for a model server in a Pod (the real node's soak)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    base = f"http://{address[0]}:{address[1]}"
    sockets: list[socket.socket] = []
    try:
        wait_ready(base)
        for _ in range(20):
            probe(base)
        before = rss_kib(pid)
        for i in range(connections):
            sock = socket.create_connection(address, timeout=10)
            if i % 2:
                sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
            sockets.append(sock)
        time.sleep(hold)
        held_rss = rss_kib(pid)
        probes = [probe(base) for _ in range(10)]
    finally:
        for sock in sockets:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return {
        "connections": connections,
        "rss_before_mib": round(before / 1024, 1),
        "rss_held_mib": round(held_rss / 1024, 1),
        "per_connection_kib": round((held_rss - before) / connections, 2),
        "probes": probes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.idle_connections")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold them")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    result = measure(options.connections, options.hold)
    if options.json:
        print(json.dumps(result))
        return
    print(
        f"{result['connections']} idle connections: RSS {result['rss_before_mib']} MiB -> "
        f"{result['rss_held_mib']} MiB ({result['per_connection_kib']} KiB each); "
        f"probes while held: {result['probes']}"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
