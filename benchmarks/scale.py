"""How the operator scales: N ModelDeployments and N TrainingJobs created at once.

For each N, on a fresh control plane (etcd, kube-apiserver, controller-manager, scheduler and
kwok's simulated nodes, built by hack/k8s/build.sh) with one `mlops operator` process running
as its ServiceAccount under the chart's RBAC rules:

- seconds until every ModelDeployment has all its children, and every TrainingJob its Job;
- seconds until every ModelDeployment is Ready, and, apart, the cluster's own part of that:
  the median time from a stable Deployment's creation to its Available condition;
- the operator's peak RSS and its CPU seconds per minute while creating and once idle;
- API requests per minute once everything is idle, counted by the API server's audit log
  (every request the operator's ServiceAccount makes: kopf's watches and patches too);
- the requests it took to get there: from the first create until every ModelDeployment is
  Ready, per ModelDeployment + TrainingJob pair, by verb and resource (in the JSON);
- where the machine's CPU went while creating: seconds per component (the API server, etcd,
  the controller-manager, the scheduler, kwok, the operator);
- the floor: the same objects the operator made (children and Jobs), created on another fresh
  control plane by 16 clients with no operator: what this machine's API server can do.

    python -m benchmarks.scale --sizes 100,500,1000
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config, utils

from tests.cluster.controlplane import ControlPlane
from tests.cluster.harness import KWOK_NODE_SELECTOR, Cluster, find_binaries, wait_for
from tests.cluster.operator_runner import (
    OPERATOR_ACCOUNT,
    OPERATOR_NAMESPACE,
    OperatorProcess,
    install_crds,
    install_rbac,
    model_store,
)

NAMESPACE = "bench"
CHILDREN_PER_MODELDEPLOYMENT = 7
"""Service, Deployment and PodDisruptionBudget of the stable variant; the router's ConfigMap,
Deployment and PodDisruptionBudget; the entry Service."""
NODES = 4
PODS_PER_NODE = 2000
DIGEST = "sha256:" + "ab" * 32
IDLE_WINDOW = 60.0
CLIENTS = 16
"""Threads that create the ModelDeployments and TrainingJobs, and the floor's objects."""
CHILD_KINDS = ("Service", "ConfigMap", "Deployment", "PodDisruptionBudget", "Job")
SERVICE_IPS = ("clusterIP", "clusterIPs")
JOB_CONTROLLER_LABELS = ("controller-uid", "job-name")
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"


@dataclass
class Result:
    n: int
    children_s: float
    jobs_s: float
    ready_s: float
    deployment_available_s: float
    peak_rss_mib: float
    cpu_s_per_min_busy: float
    cpu_s_per_min_idle: float
    idle_requests_per_min: float
    idle_requests_by_verb: dict[str, int]
    creating_requests: int
    creating_requests_by_resource: dict[str, int]
    cpu_s_by_component: dict[str, float]
    floor_objects: int = 0
    floor_s: float = float("nan")


def modeldeployment(i: int) -> dict[str, Any]:
    uri = f"pvc://mlops-models/{NAMESPACE}/model-{i:04d}/1"
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": f"md-{i:04d}", "namespace": NAMESPACE},
        "spec": {"stable": {"model": {"uri": uri, "digest": DIGEST}}},
    }


def trainingjob(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": f"tj-{i:04d}", "namespace": NAMESPACE},
        "spec": {
            "dataset": {"builtin": "iris"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        },
    }


def node(name: str) -> dict[str, Any]:
    key, value = KWOK_NODE_SELECTOR.split("=")
    resources = {"cpu": "1000", "memory": "4Ti", "pods": str(PODS_PER_NODE)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


@contextmanager
def control_plane(root: Path) -> Iterator[tuple[Cluster, ControlPlane]]:
    """A fresh control plane; its audit log has every request of the operator's account."""
    cache = find_binaries()
    root.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(cache / "bin", cache, root)
    plane.start()
    try:
        api = config.new_client_from_config(config_file=str(plane.admin_kubeconfig))
        yield Cluster(plane.admin_kubeconfig, api, True, root, cache, plane.pki), plane
        api.close()
    finally:
        plane.stop()


def prepare(cluster: Cluster) -> Path:
    cluster.apply(*(node(f"kwok-{i}") for i in range(NODES)))
    install_crds(cluster, ("TrainingJob", "ModelDeployment"))
    kubeconfig = install_rbac(cluster)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    wait_for(
        "the default ServiceAccount",
        lambda: any(
            sa.metadata.name == "default"
            for sa in cluster.core.list_namespaced_service_account(NAMESPACE).items
        ),
        60,
    )
    model_store(cluster, NAMESPACE)
    return kubeconfig


class Usage:
    """A process's CPU seconds and peak RSS, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


def count(list_fn: Callable[..., Any], **kwargs: Any) -> int:
    return len(list_fn(NAMESPACE, **kwargs).items)


def create_all(cluster: Cluster, n: int) -> None:
    custom = client.CustomObjectsApi(cluster.api)

    def create(body: dict[str, Any]) -> None:
        plural = "modeldeployments" if body["kind"] == "ModelDeployment" else "trainingjobs"
        custom.create_namespaced_custom_object("mlops.dev", "v1alpha1", NAMESPACE, plural, body)

    bodies = [b for i in range(n) for b in (modeldeployment(i), trainingjob(i))]
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(create, bodies))


def made_by_the_operator(cluster: Cluster) -> list[dict[str, Any]]:
    """The children and Jobs as the operator made them, as a client would create them."""
    listed = cluster.kubectl(
        "get",
        ",".join(k.lower() for k in CHILD_KINDS),
        f"--namespace={NAMESPACE}",
        "--selector=app.kubernetes.io/managed-by=mlops-operator",
        "--output=json",
    ).stdout
    return [bare(item) for item in json.loads(listed)["items"]]


def bare(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without what the API server or a controller set on it (status, uid, owners,
    a Service's cluster IPs, a Job's selector and the labels the Job controller adds)."""
    meta, spec = obj["metadata"], dict(obj.get("spec") or {})
    if obj["kind"] == "Service":
        spec = {k: v for k, v in spec.items() if k not in SERVICE_IPS}
    if obj["kind"] == "Job":
        spec.pop("selector", None)
        template = spec["template"]["metadata"]
        template["labels"] = job_labels_out(template.get("labels") or {})
    kept = {k: meta[k] for k in ("name", "namespace", "annotations") if k in meta}
    kept["labels"] = job_labels_out(meta.get("labels") or {})
    body = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": kept}
    return {**body, **({"data": obj["data"]} if "data" in obj else {"spec": spec})}


def job_labels_out(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k.split("/")[-1] not in JOB_CONTROLLER_LABELS}


def floor(objects: list[dict[str, Any]], root: Path) -> float:
    """Seconds to create ``objects`` on a fresh control plane, by CLIENTS threads."""
    with control_plane(root) as (cluster, _):
        prepare(cluster)
        started = time.time()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(lambda o: utils.create_from_dict(cluster.api, o), objects))
        return time.time() - started


def ready_count(custom: client.CustomObjectsApi) -> int:
    items = custom.list_namespaced_custom_object(
        "mlops.dev", "v1alpha1", NAMESPACE, "modeldeployments"
    )["items"]
    return sum(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (i.get("status") or {}).get("conditions") or []
        )
        for i in items
    )


def deployment_available_seconds(apps: client.AppsV1Api) -> float:
    """Median creation -> Available of the stable Deployments: the cluster's own latency."""
    delays = []
    for d in apps.list_namespaced_deployment(NAMESPACE, label_selector="mlops.dev/variant").items:
        available = next((c for c in d.status.conditions or [] if c.type == "Available"), None)
        if available is not None and available.status == "True":
            delays.append(
                (available.last_transition_time - d.metadata.creation_timestamp).total_seconds()
            )
    return statistics.median(delays) if delays else float("nan")


def audit_lines(path: Path, since: float, until: float) -> collections.Counter[str]:
    """The operator's requests in [since, until), by ``verb resource[/subresource]``."""
    found: collections.Counter[str] = collections.Counter()
    for log in sorted(path.parent.glob(path.name + "*")):
        for line in log.read_text().splitlines():
            event = json.loads(line)
            stamp = event.get("stageTimestamp") or event.get("requestReceivedTimestamp")
            moment = datetime.datetime.fromisoformat(stamp).timestamp()
            user = (event.get("user") or {}).get("username")
            ours = user == OPERATOR_USER and event.get("stage") == "ResponseComplete"
            if ours and since <= moment < until:
                ref = event.get("objectRef") or {}
                sub = ref.get("subresource")
                resource = ref.get("resource", "?") + (f"/{sub}" if sub else "")
                found[f"{event['verb']} {resource}"] += 1
    return found


def by_verb(found: collections.Counter[str]) -> dict[str, int]:
    verbs: collections.Counter[str] = collections.Counter()
    for key, value in found.items():
        verbs[key.split(" ", 1)[0]] += value
    return dict(verbs)


def run(n: int, root: Path, tick: float) -> tuple[list[dict[str, Any]], Result]:
    """The objects the operator made, and what it took."""
    with control_plane(root) as (cluster, plane):
        audit = plane.audit_log
        kubeconfig = prepare(cluster)
        operator = OperatorProcess(
            kubeconfig, root, settings={"MLOPS_ANALYSIS_TICK_SECONDS": str(tick)}
        )
        operator.start()
        try:
            assert operator.process is not None
            usage = Usage(operator.process.popen.pid)
            components = {p.name: Usage(p.popen.pid) for p in plane.processes}
            components["operator"] = usage
            apps, batch = client.AppsV1Api(cluster.api), client.BatchV1Api(cluster.api)
            custom = client.CustomObjectsApi(cluster.api)
            cpu0, t0 = usage.cpu(), time.time()
            component_cpu0 = {name: u.cpu() for name, u in components.items()}
            create_all(cluster, n)
            print(f"  N={n}: created in {time.time() - t0:.1f} s", file=sys.stderr)
            done: dict[str, float] = {}
            want = {"children": n * CHILDREN_PER_MODELDEPLOYMENT, "jobs": n, "ready": n}
            deadline = t0 + 600
            while len(done) < len(want) and time.time() < deadline:
                have = {
                    "children": sum(
                        count(fn, label_selector="mlops.dev/modeldeployment")
                        for fn in (
                            cluster.core.list_namespaced_service,
                            cluster.core.list_namespaced_config_map,
                            apps.list_namespaced_deployment,
                            client.PolicyV1Api(cluster.api).list_namespaced_pod_disruption_budget,
                        )
                    ),
                    "jobs": count(batch.list_namespaced_job),
                    "ready": ready_count(custom),
                }
                for key, value in have.items():
                    if key not in done and value >= want[key]:
                        done[key] = time.time() - t0
                        print(f"  N={n}: all {key} after {done[key]:.1f} s", file=sys.stderr)
                time.sleep(1)
            busy_end = time.time()
            busy_cpu = (usage.cpu() - cpu0) / max(busy_end - t0, 1) * 60
            by_component = {
                name: round(u.cpu() - component_cpu0[name], 1) for name, u in components.items()
            }
            time.sleep(15)  # the last status writes and watch events settle
            idle_cpu0, idle_t0 = usage.cpu(), time.time()
            time.sleep(IDLE_WINDOW)
            idle_t1 = time.time()
            idle_cpu = (usage.cpu() - idle_cpu0) / (idle_t1 - idle_t0) * 60
            time.sleep(2)  # the audit log is written asynchronously
            verbs = by_verb(audit_lines(audit, idle_t0, idle_t1))
            creating = audit_lines(audit, t0, t0 + done.get("ready", busy_end - t0))
            result = Result(
                n=n,
                children_s=done.get("children", float("inf")),
                jobs_s=done.get("jobs", float("inf")),
                ready_s=done.get("ready", float("inf")),
                deployment_available_s=deployment_available_seconds(apps),
                peak_rss_mib=usage.peak_rss_mib(),
                cpu_s_per_min_busy=busy_cpu,
                cpu_s_per_min_idle=idle_cpu,
                idle_requests_per_min=sum(verbs.values()) / (idle_t1 - idle_t0) * 60,
                idle_requests_by_verb=verbs,
                creating_requests=sum(creating.values()),
                creating_requests_by_resource=dict(creating.most_common()),
                cpu_s_by_component=by_component,
            )
            return made_by_the_operator(cluster), result
        finally:
            operator.stop()


def table(results: list[Result]) -> str:
    rows = [
        ("all children created (s)", lambda r: f"{r.children_s:.1f}"),
        ("all Jobs created (s)", lambda r: f"{r.jobs_s:.1f}"),
        ("all Ready (s)", lambda r: f"{r.ready_s:.1f}"),
        (
            "  of which the cluster: Deployment Available, median (s)",
            lambda r: f"{r.deployment_available_s:.1f}",
        ),
        (
            f"the floor: the same objects by {CLIENTS} clients, no operator (s)",
            lambda r: f"{r.floor_s:.1f} ({r.floor_objects} objects)",
        ),
        ("operator / floor", lambda r: f"{r.children_s / r.floor_s:.1f}x"),
        ("operator peak RSS (MiB)", lambda r: f"{r.peak_rss_mib:.0f}"),
        ("operator CPU while creating (s/min)", lambda r: f"{r.cpu_s_per_min_busy:.1f}"),
        ("operator CPU, idle (s/min)", lambda r: f"{r.cpu_s_per_min_idle:.2f}"),
        ("API requests, idle (/min)", lambda r: f"{r.idle_requests_per_min:.1f}"),
        (
            "API requests, idle, per object (/min)",
            lambda r: f"{r.idle_requests_per_min / (2 * r.n):.3f}",
        ),
        (
            "API requests until all Ready, per MD + TJ",
            lambda r: f"{r.creating_requests / r.n:.1f}",
        ),
        (
            "CPU while creating, by component (s)",
            lambda r: ", ".join(f"{k} {v:.0f}" for k, v in r.cpu_s_by_component.items()),
        ),
    ]
    head = "| | " + " | ".join(f"{r.n} MD + {r.n} TJ" for r in results) + " |"
    lines = [head, "| --- |" + " --- |" * len(results)]
    lines += ["| " + name + " | " + " | ".join(f(r) for r in results) + " |" for name, f in rows]
    if len(results) > 1:
        first, last = results[0], results[-1]
        growth = last.n / first.n
        lines.append(
            f"\nfrom N={first.n} to N={last.n} (x{growth:.0f}): children time "
            f"x{last.children_s / first.children_s:.1f}, peak RSS "
            f"x{last.peak_rss_mib / first.peak_rss_mib:.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--sizes", default="100,500,1000", help="values of N, comma-separated")
    parser.add_argument("--tick", type=float, default=5.0, help="the operator's analysis tick")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--keep", action="store_true", help="keep each run's directory (logs, audit log)"
    )
    args = parser.parse_args()
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        root = Path(tempfile.mkdtemp(prefix=f"mlops-scale-{n}-"))
        try:
            made, result = run(n, root, args.tick)
            result.floor_objects = len(made)
            result.floor_s = floor(made, root / "floor")
            print(f"  N={n}: the floor: {result.floor_s:.1f} s", file=sys.stderr)
            results.append(result)
        finally:
            if args.keep:
                print(f"  N={n}: kept {root}", file=sys.stderr)
            else:
                shutil.rmtree(root, ignore_errors=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))


if __name__ == "__main__":
    main()
