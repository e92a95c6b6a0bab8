"""The serving benchmark: `mlops serve` (each runtime) against MLServer and KServe.

    python -m benchmarks.serving [--duration 10] [--connections 1,32] [--models iris,forest]
        [--protocols rest,grpc] [--servers ours-onnx,ours-sklearn,ours-trivial,mlserver,kserve]

For each model, starts each server in turn (one worker each) on loopback, warms it up and
loads it with a closed loop of N connections sending the same single-row v2 infer request:
wrk for REST, benchmarks/grpc_load.py for gRPC (raw_input_contents). Prints requests/s, p50
and p99 latency, and the ratios against ``ours-onnx``. The models are the same everywhere,
fitted with the same scikit-learn version and seed: ``iris`` (StandardScaler +
LogisticRegression) and ``forest`` (a 100-tree RandomForestClassifier on 20 features). Ours
gets a skops artifact with its verified model.onnx and a pinned digest, served with
``--runtime onnx`` and ``--runtime sklearn``; ``ours-trivial`` serves a depth-1 decision tree
with the same inputs through ONNX: the HTTP (or gRPC) floor of this server. MLServer and
KServe get joblib files and run from their own venvs (benchmarks/venvs.py).
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

LOG = None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL
ROWS = {
    "iris": [5.1, 3.5, 1.4, 0.2],
    "forest": [
        0.5,
        -1.2,
        0.3,
        1.1,
        -0.7,
        0.2,
        0.9,
        -0.4,
        1.5,
        -1.0,
        0.1,
        0.6,
        -0.3,
        0.8,
        -1.4,
        0.4,
        1.2,
        -0.6,
        0.0,
        0.7,
    ],
}

FIT = """
import sys, joblib
import pandas as pd
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

def data(model):
    if model == "iris":
        x, y = load_iris(return_X_y=True)
        return pd.DataFrame(x, columns=["sepal_length", "sepal_width", "petal_length",
                                        "petal_width"]), y
    x, y = make_classification(2000, 20, n_informative=10, random_state=0)
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(20)]), y

def estimator(model, trivial=False):
    if trivial:
        return DecisionTreeClassifier(max_depth=1, random_state=0)
    if model == "iris":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return RandomForestClassifier(100, random_state=0)

if __name__ == "__main__":
    frame, y = data(sys.argv[2])
    joblib.dump(estimator(sys.argv[2]).fit(frame.to_numpy(), y), sys.argv[1])
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
    ModelServer().start([SKLearnModel(sys.argv[2], sys.argv[1])])
'''


@dataclass
class Result:
    model: str
    protocol: str
    connections: int
    server: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    ready: str
    infer: str
    grpc: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rest_request(model: str) -> dict[str, object]:
    row = ROWS[model]
    return {
        "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]
    }


def grpc_request(model: str) -> bytes:
    import numpy as np

    from model_server.proto import grpc_predict_v2_pb2 as pb

    row = ROWS[model]
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, len(row)])
    request.raw_input_contents.append(np.asarray(row, dtype="<f8").tobytes())
    return request.SerializeToString()


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


def check_infer(url: str, model: str) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(rest_request(model)).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    assert len(body["outputs"][0]["data"]) == 1, body


def wrk(
    url: str, duration: int, connections: int, lua: Path
) -> tuple[float, float, float, int, int]:
    command = [
        "wrk",
        "-t1",
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

    return rps, percentile("50"), percentile("99"), errors, requests


def grpc_load(
    target: str, request: bytes, duration: int, connections: int
) -> tuple[float, float, float, int, int]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.grpc_load",
        f"--target={target}",
        f"--request={request.hex()}",
        f"--connections={connections}",
        f"--duration={duration}",
    ]
    out = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return out["rps"], out["p50_ms"], out["p99_ms"], out["errors"], out["requests"]


def start_ours(work: Path, model: str, port: int, grpc_port: int, runtime: str) -> Started:
    sys.path.insert(0, str(work))
    namespace: dict[str, object] = {}
    exec(FIT, namespace)  # our own fitting code, the same the other servers run
    from model_server.testing import write_artifact

    frame, target = namespace["data"](model)  # type: ignore[operator]
    trivial = runtime == "trivial"
    estimator = namespace["estimator"](model, trivial)  # type: ignore[operator]
    directory = work / f"ours-{model}-{runtime}"
    digest = write_artifact(directory, estimator, frame, target, name=model, onnx=True)
    mlops = Path(sys.executable).with_name("mlops")
    command = [
        str(mlops),
        "serve",
        f"--model-uri={directory}",
        f"--model-digest={digest}",
        f"--runtime={'onnx' if trivial else runtime}",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--grpc-port={grpc_port}",
        "--log-level=warning",
    ]
    process = subprocess.Popen(command)
    base = f"http://127.0.0.1:{port}"
    return Started(
        process,
        f"{base}/v2/health/ready",
        f"{base}/v2/models/{model}/infer",
        f"127.0.0.1:{grpc_port}",
    )


def start_mlserver(work: Path, model: str, port: int, grpc_port: int, runtime: str) -> Started:
    """MLServer as configured by default: one inference worker process."""
    python = venvs.ensure("mlserver")
    folder = work / f"mlserver-{model}"
    (folder / model).mkdir(parents=True)
    (work / "fit.py").write_text(FIT)
    subprocess.run(
        [str(python), str(work / "fit.py"), str(folder / model / "model.joblib"), model], check=True
    )
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": grpc_port,
                "metrics_port": free_port(),
                "host": "127.0.0.1",
                "parallel_workers": 1,
                "debug": False,
            }
        )
    )
    (folder / model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": model,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1"},
            }
        )
    )
    mlserver = python.with_name("mlserver")
    process = subprocess.Popen(
        [str(mlserver), "start", str(folder)], stdout=LOG, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    return Started(
        process,
        f"{base}/v2/models/{model}/ready",
        f"{base}/v2/models/{model}/infer",
        f"127.0.0.1:{grpc_port}",
    )


def start_kserve(work: Path, model: str, port: int, grpc_port: int, runtime: str) -> Started:
    python = venvs.ensure("kserve")
    folder = work / f"kserve-{model}"
    folder.mkdir()
    (work / "fit.py").write_text(FIT)
    subprocess.run(
        [str(python), str(work / "fit.py"), str(folder / "model.joblib"), model], check=True
    )
    (folder / "server.py").write_text(textwrap.dedent(KSERVE_SERVER))
    process = subprocess.Popen(
        [
            str(python),
            str(folder / "server.py"),
            str(folder / "model.joblib"),
            model,
            f"--http_port={port}",
            f"--grpc_port={grpc_port}",
            "--workers=1",
            "--enable_latency_logging=false",
        ],
        stdout=LOG,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    return Started(
        process,
        f"{base}/v2/models/{model}/ready",
        f"{base}/v2/models/{model}/infer",
        f"127.0.0.1:{grpc_port}",
    )


STARTERS = {
    "ours-onnx": lambda w, m, p, g: start_ours(w, m, p, g, "onnx"),
    "ours-sklearn": lambda w, m, p, g: start_ours(w, m, p, g, "sklearn"),
    "ours-trivial": lambda w, m, p, g: start_ours(w, m, p, g, "trivial"),
    "mlserver": lambda w, m, p, g: start_mlserver(w, m, p, g, ""),
    "kserve": lambda w, m, p, g: start_kserve(w, m, p, g, ""),
}


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure(  # noqa: PLR0917
    protocol: str, started: Started, lua: Path, request: bytes, connections: int, seconds: int
) -> tuple[float, float, float, int, int]:
    if protocol == "rest":
        return wrk(started.infer, seconds, connections, lua)
    return grpc_load(started.grpc, request, seconds, connections)


def run(
    models: list[str],
    servers: list[str],
    protocols: list[str],
    connections: list[int],
    duration: int,
) -> list[Result]:
    if "rest" in protocols and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run hack/setup.sh (or apt-get install wrk)")
    results = []
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        work = Path(tmp)
        for model in models:
            lua = work / f"request-{model}.lua"
            body = json.dumps(rest_request(model)).replace("'", "\\'")
            lua.write_text(
                'wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = '{body}'\n"
            )
            request = grpc_request(model)
            for name in servers:
                port, grpc_port = free_port(), free_port()
                print(f"bench: {model}: starting {name}", file=sys.stderr, flush=True)
                started = STARTERS[name](work, model, port, grpc_port)
                try:
                    wait_ready(started.ready, started.process)
                    check_infer(started.infer, model)
                    for protocol in protocols:
                        for count in connections:
                            args = (protocol, started, lua, request, count)
                            measure(*args, max(2, duration // 4))  # warm-up
                            result = Result(model, protocol, count, name, *measure(*args, duration))
                            results.append(result)
                            print(
                                f"bench: {model} {protocol} c={count} {name}: "
                                f"{result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                                f"p99 {result.p99_ms:.2f} ms, {result.errors} errors",
                                file=sys.stderr,
                                flush=True,
                            )
                finally:
                    stop(started.process)
    return results


def report(results: list[Result], duration: int) -> str:
    lines = [
        f"{duration}s per run, one worker per server, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; ratios against ours-onnx",
    ]
    groups: dict[tuple[str, str, int], list[Result]] = {}
    for r in results:
        groups.setdefault((r.model, r.protocol, r.connections), []).append(r)
    for (model, protocol, connections), rows in groups.items():
        ours = next((r for r in rows if r.server == "ours-onnx"), None)
        lines.append("")
        lines.append(f"{model}, {protocol}, {connections} connection(s)")
        lines.append(
            f"{'server':<14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
            f"{'ours/this rps':>14} {'this/ours p99':>14}"
        )
        for r in rows:
            ratio = f"{ours.rps / r.rps:.2f}x" if ours and r.rps else "-"
            p99 = f"{r.p99_ms / ours.p99_ms:.2f}x" if ours and ours.p99_ms else "-"
            lines.append(
                f"{r.server:<14} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7} "
                f"{ratio:>14} {p99:>14}"
            )
        floor = next((r for r in rows if r.server == "ours-trivial"), None)
        if ours and floor and floor.rps:
            lines.append(
                f"ours-onnx reaches {ours.rps / floor.rps:.0%} of the floor (ours-trivial)"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--connections", default="1,32")
    parser.add_argument("--models", default="iris,forest")
    parser.add_argument("--protocols", default="rest,grpc")
    parser.add_argument("--servers", default="ours-onnx,ours-sklearn,ours-trivial,mlserver,kserve")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    servers = args.servers.split(",")
    unknown = set(servers) - set(STARTERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; choose from {sorted(STARTERS)}")
    results = run(
        args.models.split(","),
        servers,
        args.protocols.split(","),
        [int(c) for c in args.connections.split(",")],
        args.duration,
    )
    print(report(results, args.duration))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
