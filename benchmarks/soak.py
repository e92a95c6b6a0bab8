"""The soak: steady load through a whole canary, with promotion, from clients that never retry.

    python -m benchmarks.soak [--target local|node] [--duration 600] [--connections 4]
                              [--rps 25] [--interval S] [--steps 10,20,...] [--out F] [--json]

On the quickstart's two TrainingJobs (cancer-v1, cancer-v2) and a ModelDeployment whose
canary steps 10, 20, ... 90 % (an analysis interval of 1/11 of the duration each), so the
promotion comes at about 10/11 of it; meanwhile ``--connections`` clients each send ``--rps``
infer requests a second through the router, each followed by its feedback, on keep-alive
connections. A client never retries: a request that fails (an error status, a reset, a
closed connection) is counted and the next one opens a new connection. It prints the
requests sent, the failures and the phases the rollout went through.

Targets: ``local`` runs `mlops local up --watch`; ``node`` starts the test control plane
and the real node (tests/node: containerd, kubelet, kube-proxy, kube-router enforcing the
NetworkPolicies; root, and the binaries and images `make binaries` builds), installs the
chart with helm, applies the same manifests, and sends from the node's host to the router
Service's ClusterIP, presenting the feedback token of the ModelDeployment's Secret. After
the soak, on the node, it also reads the RSS of the stable model server's process while it
holds ``--idle-connections`` idle connections (benchmarks.idle_connections).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MLOPS = str(Path(sys.executable).with_name("mlops"))
STEPS = [10, 20, 30, 40, 50, 60, 70, 80, 90]


def manifest(interval: int, steps: list[int]) -> str:
    return f"""apiVersion: mlops.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: cancer
spec:
  stable:
    model:
      trainingJob: cancer-v1
  canary:
    model:
      trainingJob: cancer-v2
  strategy: canary
  traffic:
    steps: {json.dumps(steps)}
    interval: {interval}s
  analysis:
    maxErrorRate: 0.01
    maxAccuracyDrop: 0.05
    minRequests: 20
    failureLimit: 2
"""


def rows() -> list[tuple[bytes, int]]:
    """The quickstart's rows as the trainer reads them (its feature names), with their truth."""
    from mlops_operator.api import TrainingJob
    from mlops_operator.local.loadgen import Rows
    from mlops_operator.manifests import load
    from trainer import data

    (job,) = load([REPO / "examples/quickstart/01-trainingjob-v1.yaml"])
    assert isinstance(job, TrainingJob)
    loaded = data.load(job.spec.dataset)
    prepared = Rows.from_frame(loaded.frame, loaded.target)
    return [
        (body[1:], int(truth)) for body, truth in zip(prepared.bodies, prepared.truths, strict=True)
    ]


@dataclass
class Target:
    """Where the clients send (the router) and how the rollout's status is read."""

    host: str
    port: int
    status: Callable[[], dict[str, Any]]
    feedback_headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Numbers of the target, added to the result."""
    after: Callable[[], dict[str, Any]] = dict
    """Measured once the soak is over, before the target goes."""
    observe: Callable[[], set[str]] | None = None
    """What the rollout is doing, as a set of short descriptions (Pods, endpoints, the
    router's configuration): sampled all along, each change an event of the timeline."""


class Client(threading.Thread):
    """Infer then feedback, ``rps`` pairs a second, never retrying."""

    def __init__(
        self, index: int, target: Target, rps: float, data: list[tuple[bytes, int]], started: float
    ) -> None:
        super().__init__(daemon=True)
        self.index, self.target, self.rps, self.data = index, target, rps, data
        self.started = started
        self.halt = threading.Event()
        self.sent = 0
        self.failures: Counter[str] = Counter()
        self.variants: Counter[str] = Counter()
        self.failed: list[dict[str, Any]] = []
        """Each failure: when, which request, what answered, and the infer it followed."""

    def _post(
        self,
        connection: http.client.HTTPConnection,
        path: str,
        body: bytes,
        headers: dict[str, str],
    ) -> dict[str, Any]:
        connection.request("POST", path, body, {"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        answer = response.read()
        served_by = response.getheader("x-mlops-served-by") or "?"
        seen: dict[str, Any] = {"status": response.status, "served_by": served_by}
        if response.status != 200:
            seen["body"] = answer[:300].decode(errors="replace")
            raise Refused(f"HTTP {response.status}", seen)
        self.variants[served_by] += 1
        with contextlib.suppress(ValueError, AttributeError):
            seen["model_version"] = json.loads(answer).get("model_version")
        return seen

    def _now(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def run(self) -> None:
        target = self.target
        connection = http.client.HTTPConnection(target.host, target.port, timeout=30)
        run = uuid.uuid4().hex[:8]  # ids unique across runs: a server remembers its ids
        next_at = time.monotonic()
        n = 0
        while not self.halt.is_set():
            body, truth = self.data[(n * 7 + self.index) % len(self.data)]
            request_id = f"soak-{run}-{self.index}-{n}"
            n += 1
            infer: dict[str, Any] | None = None
            for path, payload, headers in (
                ("/v2/models/cancer/infer", b'{"id": "%s", ' % request_id.encode() + body, {}),
                (
                    "/v2/models/cancer/feedback",
                    json.dumps({"id": request_id, "truth": [truth]}).encode(),
                    target.feedback_headers,
                ),
            ):
                self.sent += 1
                at = self._now()
                reused = connection.sock is not None
                try:
                    seen = self._post(connection, path, payload, headers)
                    if infer is None:
                        infer = {"at": at, **seen}
                except (OSError, http.client.HTTPException, Refused) as error:
                    kind = path.rsplit("/", 1)[1]
                    self.failures[f"{kind}: {error}"] += 1
                    self.failed.append(
                        {
                            "at": at,
                            "client": self.index,
                            "id": request_id,
                            "request": kind,
                            "error": f"{type(error).__name__}: {error}",
                            "answer": error.seen if isinstance(error, Refused) else None,
                            "infer": infer,
                            "reused_connection": reused,
                        }
                    )
                    connection.close()  # the next request opens a new one; this one is lost
                    break
            next_at += 1.0 / self.rps
            self.halt.wait(max(0.0, next_at - time.monotonic()))
        connection.close()


class Refused(RuntimeError):
    """An answer other than 200, with what the client saw of it."""

    def __init__(self, message: str, seen: dict[str, Any]) -> None:
        super().__init__(message)
        self.seen = seen


class Timeline(threading.Thread):
    """Samples the target's world (``Target.observe``: a set of short descriptions of Pods,
    endpoints, the router's rollout) every ``period`` seconds; each change is an event."""

    def __init__(self, observe: Callable[[], set[str]], started: float, period: float) -> None:
        super().__init__(daemon=True)
        self.observe, self.started, self.period = observe, started, period
        self.halt = threading.Event()
        self.events: list[tuple[float, str, str]] = []
        self.errors = 0

    def run(self) -> None:
        before: set[str] = set()
        while not self.halt.is_set():
            try:
                now = self.observe()
            except Exception:  # an API hiccup is not the soak's failure
                self.errors += 1
                now = before
            at = round(time.monotonic() - self.started, 1)
            self.events += [(at, "+", item) for item in sorted(now - before)]
            self.events += [(at, "-", item) for item in sorted(before - now)]
            before = now
            self.halt.wait(self.period)


def local(home: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLOPS, "local", *args, "--home", str(home)],
        check=False,
        capture_output=True,
        text=True,
        **kwargs,
    )


def deployment_status(home: Path) -> dict[str, Any]:
    state = json.loads(local(home, "status", "-o", "json").stdout or "{}")
    found = (state.get("modelDeployments") or {}).get("cancer") or {}
    return dict(found.get("status") or {})


def run(
    target_name: str,
    duration: float,
    connections: int,
    rps: float,
    *,
    interval: int | None = None,
    steps: list[int] | None = None,
) -> dict[str, Any]:
    steps = steps or STEPS
    interval = interval or max(5, int(duration / (len(steps) + 2)))  # promoted before the end
    with tempfile.TemporaryDirectory(prefix="mlops-soak-") as scratch:
        root = Path(scratch)
        manifests = root / "manifests"
        manifests.mkdir()
        for name in ("01-trainingjob-v1.yaml", "02-trainingjob-v2.yaml"):
            shutil.copy(REPO / "examples" / "quickstart" / name, manifests / name)
        (manifests / "03-modeldeployment.yaml").write_text(manifest(interval, steps))
        start = TARGETS[target_name]
        with start(root, manifests) as target:
            result = soak(target, duration, connections, rps)
            result.update(interval_s=interval, target=target_name, **target.extra)
            result.update(target.after())
    return result


CONTEXT_BEFORE, CONTEXT_AFTER = 20.0, 5.0
"""Seconds of the timeline each failure is shown with."""


def wait_until_serving(
    target: Target, data: list[tuple[bytes, int]], timeout: float = 300
) -> float:
    """Seconds until an infer through the router first answers 200: the rollout reports
    Progressing once both models are trained, while their servers and the router may still be
    starting (the clients would count that start as failures)."""
    began = time.monotonic()
    body = b'{"id": "soak-ready", ' + data[0][0]
    while True:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=5)
        try:
            connection.request("POST", "/v2/models/cancer/infer", body)
            if connection.getresponse().status == 200:
                return round(time.monotonic() - began, 1)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        if time.monotonic() - began > timeout:
            raise TimeoutError("the router never answered an infer")
        time.sleep(0.5)


def soak(
    target: Target, duration: float, connections: int, rps: float, *, period: float = 0.5
) -> dict[str, Any]:
    data = rows()
    serving_after = wait_until_serving(target, data)
    started = time.monotonic()
    clients = [Client(i, target, rps, data, started) for i in range(connections)]
    timeline = Timeline(target.observe, started, period) if target.observe else None
    if timeline is not None:
        timeline.start()
    for client in clients:
        client.start()
    phases: list[tuple[float, str, int | None]] = []
    while time.monotonic() - started < duration:
        status = target.status()
        point = (status.get("phase", "?"), status.get("canaryWeight"))
        if not phases or phases[-1][1:] != point:
            phases.append((round(time.monotonic() - started, 1), *point))
        time.sleep(min(1.0, period))
    for client in clients:
        client.halt.set()
    for client in clients:
        client.join(timeout=30)
    if timeline is not None:
        timeline.halt.set()
        timeline.join(timeout=30)
    failures: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    for client in clients:
        failures.update(client.failures)
        variants.update(client.variants)
    events = timeline.events if timeline is not None else []
    failed = sorted((f for c in clients for f in c.failed), key=lambda f: f["at"])
    for failure in failed:
        failure["phase"] = phase_at(phases, failure["at"])
        failure["near"] = [
            f"{at:.1f} {sign} {what}"
            for at, sign, what in events
            if failure["at"] - CONTEXT_BEFORE <= at <= failure["at"] + CONTEXT_AFTER
        ]
    return {
        "duration_s": duration,
        "connections": connections,
        "requests": sum(c.sent for c in clients),
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "served_by": dict(variants),
        "phases": phases,
        "promoted": any(phase == "Promoted" for _, phase, _ in phases),
        "failed_requests": failed,
        "timeline": [f"{at:.1f} {sign} {what}" for at, sign, what in events],
        "timeline_errors": timeline.errors if timeline is not None else 0,
        "serving_after_s": serving_after,
    }


def phase_at(phases: list[tuple[float, str, int | None]], at: float) -> str:
    """The rollout's phase and canary weight as last seen before ``at``."""
    seen = [f"{phase} {weight}" for when, phase, weight in phases if when <= at]
    return seen[-1] if seen else "?"


@contextmanager
def local_target(root: Path, manifests: Path) -> Iterator[Target]:
    """`mlops local up --watch`: the router on loopback once the rollout is Progressing."""
    home = root / "home"
    up = subprocess.Popen(
        [MLOPS, "local", "up", "-f", str(manifests), "--home", str(home), "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = wait_for_router(home, up)
        conf = home / "run" / "router-cancer" / "nginx.conf"
        yield Target(
            "127.0.0.1", port, lambda: deployment_status(home), observe=lambda: router_view(conf)
        )
    finally:
        local(home, "down", timeout=60)
        up.wait(timeout=60)


@contextmanager
def node_target(root: Path, manifests: Path) -> Iterator[Target]:
    """The real node (tests/node), the chart and the manifests; the router's ClusterIP."""
    from tests.node.chart import Release
    from tests.node.realnode import started_node

    began = time.monotonic()
    with started_node(root / "node") as (cluster, node):
        release = Release.create(cluster, node, "soak", "soak")
        release.run("install")
        cluster.apply_files(manifests, namespace=release.watch)
        wait_for(
            "the rollout to start",
            lambda: release.status("cancer").get("phase") == "Progressing",
            timeout=600,
        )
        host, port = release.service_address("cancer")
        ready = round(time.monotonic() - began, 1)

        def after() -> dict[str, Any]:
            return {"idle": idle_connections_on_node(release, node)}

        yield Target(
            host,
            port,
            lambda: release.status("cancer"),
            {"Authorization": f"Bearer {release.feedback_token('cancer')}"},
            {"node_start_s": node.timings, "apply_to_progressing_s": ready},
            after,
            observe=lambda: node_view(release),
        )


IDLE_CONNECTIONS = 1000


def idle_connections_on_node(release: Any, node: Any) -> dict[str, object]:
    """benchmarks.idle_connections on the stable model server's Pod: its process's RSS (from
    the node's /proc) while the node's host holds IDLE_CONNECTIONS idle connections."""
    from benchmarks.idle_connections import held
    from mlops_operator.builders.serving import PORT
    from mlops_operator.objects import selector, selector_string

    labels = selector_string(selector("cancer", "model-server", "stable"))
    (pod,) = [
        p
        for p in release.pods(release.watch, labels)
        if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    ]
    container = node.crictl("ps", "--quiet", f"--pod={pod_sandbox(node, pod)}").stdout.split()[0]
    pid = json.loads(node.crictl("inspect", container).stdout)["info"]["pid"]
    return held((pod.status.pod_ip, PORT), pid, IDLE_CONNECTIONS, 5.0)


def pod_sandbox(node: Any, pod: Any) -> str:
    name, namespace = pod.metadata.name, pod.metadata.namespace
    found = node.crictl("pods", "--quiet", f"--name={name}", f"--namespace={namespace}")
    return str(found.stdout.split()[0])


def router_view(conf: Path) -> set[str]:
    """The local router's upstreams and split, from its nginx.conf."""
    seen: set[str] = set()
    upstream = ""
    for line in conf.read_text().splitlines():
        words = line.split()
        if words[:1] == ["upstream"]:
            upstream = words[1]
        elif words[:1] == ["server"] and upstream:
            seen.add(f"router {upstream} -> {words[1].rstrip(';')}")
        elif words[:1] == ["}"]:
            upstream = ""
        elif len(words) == 2 and words[0].endswith("%") and words[1] == "canary;":
            seen.add(f"router split {words[0]} canary")
    return seen


def node_view(release: Any) -> set[str]:
    """Pods (variant, model digest, ready, terminating), the variants' and the router's ready
    endpoints, and the router's configuration as its Pods run it."""
    from kubernetes import client

    from mlops_operator.objects import ANNOTATION_DIGEST, LABEL_COMPONENT, LABEL_VARIANT

    cluster, namespace = release.cluster, release.watch
    seen: set[str] = set()
    for pod in release.pods(namespace):
        labels = pod.metadata.labels or {}
        component = labels.get(LABEL_COMPONENT)
        if component not in ("model-server", "router"):
            continue
        annotations = pod.metadata.annotations or {}
        what = labels.get(LABEL_VARIANT) or "router"
        digest = (annotations.get(ANNOTATION_DIGEST) or "").removeprefix("sha256:")[:8]
        config = (annotations.get("mlops.dev/config-checksum") or "").removeprefix("sha256:")
        state = (
            "Ready"
            if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            else str(pod.status.phase)
        )
        if pod.metadata.deletion_timestamp:
            state += ",Terminating"
        seen.add(
            f"pod {pod.metadata.name} {what} {digest or config[:8]} {pod.status.pod_ip} {state}"
        )
    discovery = client.DiscoveryV1Api(cluster.api)
    for slice_ in discovery.list_namespaced_endpoint_slice(namespace).items:
        meta = slice_.metadata or client.V1ObjectMeta()
        service = (meta.labels or {}).get("kubernetes.io/service-name")
        for endpoint in slice_.endpoints or []:
            c = endpoint.conditions or client.V1EndpointConditions()
            flags = "".join(
                flag for flag, on in (("R", c.ready), ("S", c.serving), ("T", c.terminating)) if on
            )
            for address in endpoint.addresses:
                seen.add(f"endpoint {service} {address} {flags}")
    return seen


TARGETS: dict[str, Callable[[Path, Path], Any]] = {"local": local_target, "node": node_target}


def wait_for_router(home: Path, up: subprocess.Popen[str], timeout: float = 600) -> int:
    """The router's port once the rollout is Progressing (training first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if up.poll() is not None:
            raise RuntimeError(f"mlops local up exited {up.returncode}: {up.stdout.read()}")  # type: ignore[union-attr]
        status = deployment_status(home)
        url = status.get("url") or ""
        if status.get("phase") == "Progressing" and url.startswith("http://127.0.0.1:"):
            return int(url.split(":")[2].split("/")[0])
        time.sleep(1)
    raise TimeoutError("the rollout did not start")


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--target", choices=sorted(TARGETS), default="local")
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rps", type=float, default=25.0, help="per connection")
    parser.add_argument(
        "--interval", type=int, help="analysis interval, s (default: duration / (steps + 2))"
    )
    parser.add_argument("--steps", help="canary weights, e.g. 20,50 (default: 10,20,...,90)")
    parser.add_argument("--out", type=Path, help="also write the whole result (JSON) here")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    steps = [int(w) for w in options.steps.split(",")] if options.steps else None
    result = run(
        options.target,
        options.duration,
        options.connections,
        options.rps,
        interval=options.interval,
        steps=steps,
    )
    if options.out:
        options.out.write_text(json.dumps(result, indent=1) + "\n")
    if options.json:
        print(json.dumps(result))
        return
    print(
        f"soak ({result['target']}) {result['duration_s']:.0f} s, {result['connections']} "
        f"clients: {result['requests']} requests, {result['failed']} failed {result['failures']}; "
        f"served by {result['served_by']}; promoted: {result['promoted']}"
    )
    for at, phase, weight in result["phases"]:
        print(f"  {at:7.1f} s  {phase}  canary {weight}")
    for failure in result["failed_requests"]:
        answer = failure["answer"] or {}
        print(
            f"  failed at {failure['at']:.1f} s ({failure['phase']}): {failure['request']} "
            f"{failure['error']} {answer.get('body', '')[:120]!r}; infer: {failure['infer']}"
        )
        for line in failure["near"]:
            print(f"      {line}")


if __name__ == "__main__":
    main()
