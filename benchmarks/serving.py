"""The serving benchmark: `mlops serve` against MLServer and KServe on the same sklearn model.

    python -m benchmarks.serving [--duration 20] [--connections 32] [--servers ours,mlserver,kserve]

Starts each server in turn (one worker each) on loopback, warms it up, loads it with wrk
(a closed loop: ``--connections`` concurrent connections sending the same v2 infer request)
and prints requests/s, p50 and p99 latency and the ratios against ours. MLServer and KServe
run from their own venvs (benchmarks/venvs.py), created on first use. The model is the same
everywhere: StandardScaler + LogisticRegression fitted on iris with the same scikit-learn
version; each server gets it in its own format (ours: a skops artifact with a pinned digest;
MLServer and KServe: joblib).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import venvs

MODEL = "iris"
LOG = None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL
REQUEST = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}

FIT = """
import sys, joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
X, y = load_iris(return_X_y=True)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
joblib.dump(model, sys.argv[1])
"""

KSERVE_SERVER = '''
import sys
import uuid

import joblib
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class SKLearnModel(Model):
    """What kserve's sklearnserver does for the v2 protocol: numpy in, predict, numpy out."""

    def __init__(self, name, path):
        super().__init__(name)
        self.model = joblib.load(path)
        self.ready = True

    def predict(self, payload, headers=None):
        x = payload.inputs[0].as_numpy()
        result = self.model.predict(x)
        output = InferOutput(name="predict", shape=list(result.shape), datatype="INT64")
        output.set_data_from_numpy(result, binary_data=False)
        return InferResponse(
            model_name=self.name,
            infer_outputs=[output],
            response_id=payload.id or str(uuid.uuid4()),
        )


if __name__ == "__main__":
    ModelServer().start([SKLearnModel("iris", sys.argv[1])])
'''


@dataclass
class Result:
    server: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def check_infer(url: str) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(REQUEST).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    assert body["outputs"][0]["data"] == [0], body


def wrk(url: str, duration: int, connections: int, threads: int, lua: Path) -> Result:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        url,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))

    def percentile(p: str) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        assert match, output
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return Result("", rps, percentile("50"), percentile("99"), errors, requests)


def start_ours(work: Path, port: int) -> tuple[subprocess.Popen[bytes], str, str]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model_server.testing import write_artifact

    frame, target = load_iris(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    digest = write_artifact(work / "ours", model, frame, target, name=MODEL)
    mlops = Path(sys.executable).with_name("mlops")
    command = [
        str(mlops),
        "serve",
        f"--model-uri={work / 'ours'}",
        f"--model-digest={digest}",
        "--host=127.0.0.1",
        f"--port={port}",
        "--log-level=warning",
    ]
    process = subprocess.Popen(command)
    base = f"http://127.0.0.1:{port}"
    return process, f"{base}/v2/health/ready", f"{base}/v2/models/{MODEL}/infer"


def start_mlserver(work: Path, port: int) -> tuple[subprocess.Popen[bytes], str, str]:
    python = venvs.ensure("mlserver")
    folder = work / "mlserver"
    (folder / MODEL).mkdir(parents=True)
    subprocess.run([str(python), "-c", FIT, str(folder / MODEL / "model.joblib")], check=True)
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "host": "127.0.0.1",
                # Inference in the server process: measured faster than MLServer's default
                # of one separate inference worker process (no IPC per request).
                "parallel_workers": int(os.environ.get("BENCH_MLSERVER_PARALLEL_WORKERS", "0")),
                "debug": False,
            }
        )
    )
    (folder / MODEL / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1"},
            }
        )
    )
    mlserver = python.with_name("mlserver")
    process = subprocess.Popen(
        [str(mlserver), "start", str(folder)],
        stdout=LOG,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    return process, f"{base}/v2/models/{MODEL}/ready", f"{base}/v2/models/{MODEL}/infer"


def start_kserve(work: Path, port: int) -> tuple[subprocess.Popen[bytes], str, str]:
    python = venvs.ensure("kserve")
    folder = work / "kserve"
    folder.mkdir()
    subprocess.run([str(python), "-c", FIT, str(folder / "model.joblib")], check=True)
    (folder / "server.py").write_text(textwrap.dedent(KSERVE_SERVER))
    process = subprocess.Popen(
        [
            str(python),
            str(folder / "server.py"),
            str(folder / "model.joblib"),
            f"--http_port={port}",
            f"--grpc_port={free_port()}",
            "--workers=1",
            "--enable_latency_logging=false",
        ],
        stdout=LOG,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    return process, f"{base}/v2/models/{MODEL}/ready", f"{base}/v2/models/{MODEL}/infer"


STARTERS = {"ours": start_ours, "mlserver": start_mlserver, "kserve": start_kserve}


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(servers: list[str], duration: int, connections: int, threads: int) -> list[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run hack/setup.sh (or apt-get install wrk)")
    results = []
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        work = Path(tmp)
        lua = work / "request.lua"
        body = json.dumps(REQUEST).replace("'", "\\'")
        lua.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = '{body}'\n"
        )
        for name in servers:
            port = free_port()
            print(f"bench: starting {name} on port {port}", file=sys.stderr, flush=True)
            process, ready, infer = STARTERS[name](work, port)
            try:
                wait_ready(ready, process)
                check_infer(infer)
                wrk(infer, max(2, duration // 4), connections, threads, lua)  # warm-up
                result = wrk(infer, duration, connections, threads, lua)
                result.server = name
                results.append(result)
                print(
                    f"bench: {name}: {result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                    f"p99 {result.p99_ms:.2f} ms, {result.errors} errors",
                    file=sys.stderr,
                    flush=True,
                )
            finally:
                stop(process)
    return results


def report(results: list[Result], connections: int, duration: int) -> str:
    ours = next((r for r in results if r.server == "ours"), None)
    lines = [
        f"wrk, {connections} connections, {duration}s, one worker per server, "
        f"{os.cpu_count()} CPUs",
        f"{'server':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'ours/this rps':>14} {'this/ours p99':>14}",
    ]
    for r in results:
        ratio = f"{ours.rps / r.rps:.2f}x" if ours else "-"
        p99 = f"{r.p99_ms / ours.p99_ms:.2f}x" if ours else "-"
        lines.append(
            f"{r.server:<10} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7} "
            f"{ratio:>14} {p99:>14}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--servers", default="ours,mlserver,kserve")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    servers = args.servers.split(",")
    unknown = set(servers) - set(STARTERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; choose from {sorted(STARTERS)}")
    results = run(servers, args.duration, args.connections, args.threads)
    print(report(results, args.connections, args.duration))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
