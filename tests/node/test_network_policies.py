"""Who may steer a rollout, on the real node with an enforcer (kube-router's firewall beside the
bridge CNI): the chart installed with Prometheus named, one ModelDeployment serving, and test
Pods of the project image that probe its model servers, its router and the operator.

- outside the allowed set (another namespace; the same namespace without the router's labels),
  a Pod reaches neither the model servers' inference ports nor their metrics port, nor the
  operator's metrics; it reaches the router, and the router reaches the model servers;
- feedback without the token gets 401, with a forged one 403, through the router and at a
  model server itself; with the ModelDeployment's token, 200;
- the operator (its own Pod) and Prometheus (the Pods the chart's values name) read the
  metrics; Prometheus reaches no inference port.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from sklearn.datasets import load_breast_cancer

from mlops_operator.builders.serving import GRPC_PORT, METRICS_PORT, PORT
from mlops_operator.objects import selector, selector_string
from tests.cluster.harness import REPO, Cluster, wait_for

from .chart import Release
from .realnode import RealNode, pod_logs

MDEP = "cancer"
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}
DENIED = ("ConnectionRefusedError", "TimeoutError")
# Runs in each test Pod: every probe in $PROBES, one JSON object of results on the last line.
# Expected-open probes come first and are retried (the enforcer learns a new Pod's address
# within seconds); a probe expected to be denied then runs once.
PROBE = r"""
import json, os, socket, time, urllib.error, urllib.request

def http(url, body=None, headers={}):
    request = urllib.request.Request(url, body and json.dumps(body).encode(),
                                     {"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()

def probe(p):
    if p["kind"] == "tcp":
        socket.create_connection((p["host"], p["port"]), timeout=4).close()
        return "open"
    if p["kind"] == "feedback":  # a prediction, then its feedback with p["headers"]
        status, answer = http(p["base"] + "/infer", p["body"])
        if status != 200:
            return f"infer {status}"
        truth = {"id": json.loads(answer)["id"], "truth": [p["truth"]]}
        return http(p["base"] + "/feedback", truth, p["headers"])[0]
    return http(p["url"])[0]

out = {}
for p in json.loads(os.environ["PROBES"]):
    for attempt in range(p.get("attempts", 1)):
        try:
            out[p["name"]] = probe(p)
        except OSError as error:
            out[p["name"]] = type(error).__name__
        if out[p["name"]] in (200, "open"):
            break
        time.sleep(1)
print(json.dumps(out), flush=True)
"""


@dataclass
class Guarded:
    release: Release
    outside: str  # another namespace
    prometheus: str  # Prometheus's namespace
    server_ip: str  # a stable model server Pod
    operator_ip: str
    base: str  # the ModelDeployment's URL (the router)
    token: str
    row: list[float]
    truth: int

    @property
    def cluster(self) -> Cluster:
        return self.release.cluster

    def run(self, name: str, namespace: str, labels: dict[str, str], probes: list[dict]) -> dict:
        """A test Pod of the project image running `probes`; their results."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                "containers": [
                    {
                        "name": "probe",
                        "image": self.release.image,
                        "imagePullPolicy": "Never",
                        "command": ["python", "-c", PROBE],
                        "env": [{"name": "PROBES", "value": json.dumps(probes)}],
                    }
                ],
            },
        }
        self.cluster.apply(pod)

        def done() -> str | None:
            phase = self.cluster.core.read_namespaced_pod(name, namespace).status.phase
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_for(f"test Pod {namespace}/{name}", done, 180)
        log = self.cluster.core.read_namespaced_pod_log(name, namespace)
        assert phase == "Succeeded", log
        return dict(json.loads(log.strip().splitlines()[-1]))

    def router(self) -> dict[str, Any]:
        entry = urlsplit(self.base)
        host, port = entry.hostname, entry.port or 80
        return {"name": "router", "kind": "tcp", "host": host, "port": port, "attempts": 10}

    def server(self, port: int, name: str) -> dict[str, Any]:
        return {"name": name, "kind": "tcp", "host": self.server_ip, "port": port}

    def feedback(self, name: str, base: str, headers: dict[str, str]) -> dict[str, Any]:
        body = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": self.row}]}
        return {
            "name": name,
            "kind": "feedback",
            "base": base,
            "body": body,
            "truth": self.truth,
            "headers": headers,
            "attempts": 5,
        }

    def forged(self, base: str, where: str) -> list[dict[str, Any]]:
        return [
            self.feedback(f"{where} feedback without a token", base, {}),
            self.feedback(
                f"{where} feedback with a forged token",
                base,
                {"Authorization": "Bearer " + uuid.uuid4().hex},
            ),
        ]


@pytest.fixture(scope="module")
def guarded(cluster: Cluster, node: RealNode) -> Iterator[Guarded]:
    suffix = uuid.uuid4().hex[:6]
    prometheus = f"np-prometheus-{suffix}"
    where = {"kubernetes.io/metadata.name": prometheus}
    values = (
        f"--set-json=networkPolicy.prometheus.namespaceSelector={json.dumps(where)}",
        f"--set-json=networkPolicy.prometheus.podSelector={json.dumps(PROMETHEUS)}",
    )
    release = Release.create(cluster, node, "netpol", "np", values=values)
    outside = f"np-outside-{suffix}"
    for namespace in (outside, prometheus):
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    started = time.monotonic()
    try:
        release.run("install")
        manifest = cluster.workdir / f"{MDEP}.yaml"
        manifest.write_text(
            (REPO / "examples/quickstart/01-trainingjob-v1.yaml").read_text()
            + f"---\napiVersion: mlops.dev/v1alpha1\nkind: ModelDeployment\n"
            f"metadata:\n  name: {MDEP}\nspec:\n  stable:\n    model:\n"
            "      trainingJob: cancer-v1\n"
        )
        cluster.apply_files(manifest, namespace=release.watch)
        release.run("serving")  # hack/quickstart.sh's: the ModelDeployment named cancer
        servers = running(release, release.watch, selector_string(selector(MDEP, "model-server")))
        operators = running(release, release.namespace, "app.kubernetes.io/component=operator")
        data = load_breast_cancer()
        node.e2e_timings["network policies: install -> serving"] = round(
            time.monotonic() - started, 1
        )
        yield Guarded(
            release,
            outside,
            prometheus,
            servers[0].status.pod_ip,
            operators[0].status.pod_ip,
            release.status(MDEP)["url"],
            release.feedback_token(MDEP),
            [float(v) for v in data.data[0]],
            int(data.target[0]),
        )
    finally:
        for namespace in (release.watch, release.namespace):
            (node.root / f"pods-{namespace}.json").write_text(
                json.dumps(pod_logs(cluster.core, namespace), indent=1)
            )
        if not release.failed:
            release.run("uninstall")
        for namespace in (release.watch, release.namespace, outside, prometheus):
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        node.e2e_timings["network policies: total"] = round(time.monotonic() - started, 1)


def running(release: Release, namespace: str, labels: str) -> list[Any]:
    """The Pods that run and have an address."""
    pods = release.pods(namespace, labels)
    return [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]


@pytest.mark.parametrize("where", ["outside", "neighbour"])
def test_a_pod_outside_the_allowed_set_reaches_only_the_router(
    guarded: Guarded, where: str
) -> None:
    namespace = guarded.outside if where == "outside" else guarded.release.watch
    results = guarded.run(
        f"np-{where}",
        namespace,
        {"app": f"np-{where}"},
        [
            guarded.router(),
            *guarded.forged(guarded.base, "router"),
            guarded.server(PORT, "inference"),
            guarded.server(GRPC_PORT, "grpc"),
            guarded.server(METRICS_PORT, "metrics"),
            {
                "name": "operator metrics",
                "kind": "tcp",
                "host": guarded.operator_ip,
                "port": METRICS_PORT,
            },
        ],
    )
    assert results.pop("router") == "open"
    assert results.pop("router feedback without a token") == 401, results
    assert results.pop("router feedback with a forged token") == 403, results
    assert all(outcome in DENIED for outcome in results.values()), results


def test_forged_feedback_is_refused_at_the_model_server(guarded: Guarded) -> None:
    """A Pod wearing the router's labels reaches the server: the token still decides."""
    server = f"http://{guarded.server_ip}:{PORT}/v2/models/{MDEP}"
    token = {"Authorization": f"Bearer {guarded.token}"}
    results = guarded.run(
        "np-impostor",
        guarded.release.watch,
        selector(MDEP, "router"),
        [
            guarded.feedback("server feedback with the token", server, token),
            *guarded.forged(server, "server"),
            guarded.feedback("router feedback with the token", guarded.base, token),
        ],
    )
    assert results == {
        "server feedback with the token": 200,
        "server feedback without a token": 401,
        "server feedback with a forged token": 403,
        "router feedback with the token": 200,
    }


def test_the_operator_and_prometheus_read_the_metrics(guarded: Guarded) -> None:
    metrics = f"http://{guarded.server_ip}:{METRICS_PORT}/metrics"
    operator = next(
        p.metadata.name
        for p in running(
            guarded.release, guarded.release.namespace, "app.kubernetes.io/component=operator"
        )
        if p.status.pod_ip == guarded.operator_ip
    )
    scrape = (
        f"import urllib.request, sys; print(urllib.request.urlopen({metrics!r}, timeout=4).status)"
    )
    out = guarded.cluster.kubectl(
        "exec", f"--namespace={guarded.release.namespace}", operator, "--", "python", "-c", scrape
    )
    assert out.stdout.strip() == "200", out
    results = guarded.run(
        "np-prometheus",
        guarded.prometheus,
        PROMETHEUS,
        [
            {"name": "model server metrics", "kind": "http", "url": metrics, "attempts": 10},
            {
                "name": "operator metrics",
                "kind": "http",
                "attempts": 10,
                "url": f"http://{guarded.operator_ip}:{METRICS_PORT}/metrics",
            },
            guarded.server(PORT, "inference"),
        ],
    )
    assert results.pop("model server metrics") == 200
    assert results.pop("operator metrics") == 200
    assert results["inference"] in DENIED, results
