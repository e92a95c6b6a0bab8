"""The ModelDeployment controller on a real control plane, as its ServiceAccount under the
chart's RBAC rules: children, weights stepping up, promotion, rollback, restart mid-rollout,
and the Gateway API / Istio routes accepted by the API server with their CRDs installed.

kwok's Pods run nothing, so the analysis reads real metrics from real model-server processes
on loopback: the operator's MLOPS_METRICS_TARGETS setting points each ModelDeployment's
variants at them, and a load thread sends them requests (the faulty model answers 500 to the
rows it is told to fail).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.component.servers import Server, iris_artifacts, model_server, send

from .harness import Cluster, wait_for
from .operator_runner import (
    OPERATOR_USER,
    OperatorProcess,
    install_crds,
    install_rbac,
    model_store,
    refusals,
)
from .rollouts import Rollouts, Seen, promoted

GROUP, VERSION, PLURAL = "mlops.dev", "v1alpha1", "modeldeployments"
NAMESPACE = "mdep-e2e"
NAMES = (
    "healthy",
    "failing",
    "worse",
    "restart",
    "routes-gw",
    "routes-istio",
    "shadow",
    "cd",
    "ab",
    "guarded",
    "idle",
    "clash",
    "apiserver-restart",  # test_control_plane_faults.py
    "etcd-restart",
)
TIMINGS: dict[str, Any] = {}


def build_sh(*args: str) -> list[str]:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [str(root / "hack" / "k8s" / "build.sh"), *args], check=True, capture_output=True, text=True
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def install_route_crds(cluster: Cluster) -> None:
    """HTTPRoute (Gateway API standard channel) and VirtualService (Istio) CRDs."""
    wanted = ("httproutes.gateway.networking.k8s.io", "virtualservices.networking.istio.io")
    docs = []
    for path in build_sh("crds"):
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if (
                doc
                and doc.get("kind") == "CustomResourceDefinition"
                and (doc["metadata"]["name"] in wanted)
            ):
                docs.append(doc)
    assert len(docs) == 2, [d["metadata"]["name"] for d in docs]
    cluster.apply(*docs)
    ext = client.ApiextensionsV1Api(cluster.api)
    for name in wanted:
        wait_for(
            f"CRD {name}",
            lambda name=name: (
                {
                    c.type: c.status
                    for c in ext.read_custom_resource_definition(name).status.conditions or []
                }.get("Established")
                == "True"
            ),
            60,
        )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("mdep-models")
    artifacts = iris_artifacts(root)
    v2 = root / "good-v2"
    from model_server.testing import iris_artifact

    artifacts["good-v2"] = (str(v2), iris_artifact(v2, version="2"))
    with (
        model_server(*artifacts["good"], "stable", log=root / "stable.log") as stable,
        model_server(*artifacts["good-v2"], "canary", log=root / "good.log") as good,
        model_server(*artifacts["faulty"], "canary", log=root / "faulty.log") as faulty,
    ):
        yield {"artifacts": artifacts, "stable": stable, "good": good, "faulty": faulty}


def targets(servers: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    stable, good, faulty = servers["stable"], servers["good"], servers["faulty"]
    out = {}
    for name in NAMES:
        canary = faulty if name in ("failing", "worse") else good
        out[f"{NAMESPACE}/{name}"] = {
            "stable": [stable.metrics_url],
            "canary": [canary.metrics_url],
        }
    return out


@pytest.fixture(scope="module")
def operator(cluster: Cluster, servers: dict[str, Any]) -> Iterator[OperatorProcess]:
    install_crds(cluster, ("TrainingJob", "ModelDeployment"))
    install_route_crds(cluster)
    kubeconfig = install_rbac(cluster)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    runner = OperatorProcess(
        kubeconfig,
        cluster.workdir,
        settings={
            "MLOPS_ANALYSIS_TICK_SECONDS": "0.5",
            "MLOPS_ROUTER_REPLICAS": "1",
            "MLOPS_METRICS_TARGETS": json.dumps(targets(servers)),
        },
    )
    runner.start()
    yield runner
    runner.stop()
    assert refusals(cluster, runner) == [], "the operator was refused something it needs"
    (cluster.workdir / "modeldeployment-timings.json").write_text(json.dumps(TIMINGS, indent=1))
    print(f"\nModelDeployment timings: {json.dumps(TIMINGS)}")


@pytest.fixture
def custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


@contextmanager
def load(*targets: tuple[Server, int]) -> Iterator[None]:
    """Requests to each (server, bad_every) until the block ends (about 40 per second each)."""
    stop = threading.Event()

    def loop(server: Server, bad_every: int) -> None:
        while not stop.is_set():
            send(server.port, 4, bad_every)
            time.sleep(0.1)

    threads = [threading.Thread(target=loop, args=t, daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


def model(artifact: tuple[str, str]) -> dict[str, str]:
    return {"uri": "file://" + artifact[0], "digest": artifact[1]}


def manifest(
    name: str, stable: tuple[str, str], canary: tuple[str, str] | None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"stable": {"model": model(stable)}, **spec},
    }
    if canary is not None:
        body["spec"]["canary"] = {"model": model(canary)}
    return body


def read(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return Rollouts(custom, NAMESPACE).read(name)


def create(custom: client.CustomObjectsApi, body: dict[str, Any]) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)


def delete(custom: client.CustomObjectsApi, name: str) -> None:
    try:
        custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    except ApiException as error:
        if error.status != 404:
            raise


def watch_weights(
    custom: client.CustomObjectsApi,
    name: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> tuple[dict[str, Any], Seen]:
    """Polls the status until ``until``; every (seconds, phase, canaryWeight) change seen."""
    return Rollouts(custom, NAMESPACE).watch(name, until, timeout)


def exists(cluster: Cluster, kind: str, name: str) -> bool:
    apis = {
        "Deployment": lambda: client.AppsV1Api(cluster.api).read_namespaced_deployment(
            name, NAMESPACE
        ),
        "Service": lambda: cluster.core.read_namespaced_service(name, NAMESPACE),
        "ConfigMap": lambda: cluster.core.read_namespaced_config_map(name, NAMESPACE),
        "PodDisruptionBudget": lambda: client.PolicyV1Api(
            cluster.api
        ).read_namespaced_pod_disruption_budget(name, NAMESPACE),
    }
    try:
        apis[kind]()
        return True
    except ApiException as error:
        if error.status == 404:
            return False
        raise


def kill(operator: OperatorProcess) -> None:
    """SIGKILL, no cleanup at all (as when a node dies), and reap the process."""
    assert operator.process is not None
    os.killpg(operator.process.popen.pid, signal.SIGKILL)
    operator.process.popen.wait(10)
    operator.stop()


def progression(seen: list[tuple[float, str | None, int | None]]) -> list[int | None]:
    """The canary weights while Progressing, each change once."""
    weights: list[int | None] = []
    for _, phase, weight in seen:
        if phase == "Progressing" and (not weights or weights[-1] != weight):
            weights.append(weight)
    return weights


def canary_gone(cluster: Cluster, name: str) -> None:
    """The canary's Deployment goes once the router no longer sends to it."""
    try:
        wait_for(
            "the canary removed", lambda: not exists(cluster, "Deployment", f"{name}-canary"), 30
        )
    except TimeoutError:
        router = client.AppsV1Api(cluster.api).read_namespaced_deployment(
            f"{name}-router", NAMESPACE
        )
        raise AssertionError(
            f"router: generation {router.metadata.generation}, status {router.status}"
        ) from None


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == type_)


def events(cluster: Cluster, name: str) -> list[tuple[str, str, str]]:
    found = cluster.core.list_namespaced_event(
        NAMESPACE, field_selector=f"involvedObject.name={name},involvedObject.kind=ModelDeployment"
    )
    return [(e.type, e.reason, e.message) for e in found.items]


def test_healthy_canary_steps_up_and_is_promoted(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    artifacts = servers["artifacts"]
    body = manifest(
        "healthy",
        artifacts["good"],
        artifacts["good-v2"],
        traffic={"steps": [20, 50], "interval": "2s"},
        analysis={
            "maxErrorRate": 0.02,
            "maxLatencyP99Ms": 2000,
            "minRequests": 10,
            "failureLimit": 2,
        },
    )
    with load((servers["stable"], 0), (servers["good"], 0)):
        create(custom, body)
        status, seen = watch_weights(
            custom, "healthy", lambda s: s.get("phase") == "Progressing", 30
        )
        for kind, child in [
            ("Deployment", "healthy-stable"),
            ("Deployment", "healthy-canary"),
            ("Deployment", "healthy-router"),
            ("Service", "healthy-stable"),
            ("Service", "healthy-canary"),
            ("Service", "healthy"),
            ("ConfigMap", "healthy-router"),
            ("PodDisruptionBudget", "healthy-stable"),
            ("PodDisruptionBudget", "healthy-canary"),
        ]:
            wait_for(f"{kind} {child}", lambda k=kind, c=child: exists(cluster, k, c), 20)
        deployment = client.AppsV1Api(cluster.api).read_namespaced_deployment(
            "healthy-canary", NAMESPACE
        )
        env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
        assert env["MLOPS_MODEL_DIGEST"] == artifacts["good-v2"][1]
        assert env["MLOPS_VARIANT"] == "canary"
        status, more = watch_weights(custom, "healthy", promoted, 60)
    seen += more
    TIMINGS["promotion"] = seen
    assert progression(seen) == [20, 50], seen
    assert status["canaryWeight"] == 0
    assert status["stable"]["digest"] == artifacts["good-v2"][1]
    assert status["stable"]["weight"] == 100
    assert status["promoted"]["digest"] == artifacts["good-v2"][1]
    assert status["analysis"]["verdict"] == "Passed"
    assert status["analysis"]["canary"]["requests"] >= 10
    canary_gone(cluster, "healthy")
    stable = client.AppsV1Api(cluster.api).read_namespaced_deployment("healthy-stable", NAMESPACE)
    env = {e.name: e.value for e in stable.spec.template.spec.containers[0].env}
    assert env["MLOPS_MODEL_DIGEST"] == artifacts["good-v2"][1]
    conf = cluster.core.read_namespaced_config_map("healthy-router", NAMESPACE).data["nginx.conf"]
    assert "mlops_canary" not in conf
    reasons = [reason for _, reason, _ in events(cluster, "healthy")]
    assert {"RolloutStarted", "StepAdvanced", "Promoted"} <= set(reasons), reasons
    # Promoted stays promoted (the canary's digest is remembered).
    time.sleep(2)
    assert read(custom, "healthy")["status"]["phase"] == "Promoted"
    # The outcome is a condition, so scripts wait on it as they wait on a Job.
    cluster.kubectl(
        "wait", "-n", NAMESPACE, "--for=condition=Promoted", "mdep/healthy", "--timeout=10s"
    )
    assert condition(status, "RolledBack")["status"] == "False"
    assert "last step passed" in condition(status, "Promoted")["message"]


def test_failing_canary_is_rolled_back_with_the_numbers(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    artifacts = servers["artifacts"]
    body = manifest(
        "failing",
        artifacts["good"],
        artifacts["faulty"],
        traffic={"steps": [20, 50], "interval": "2s"},
        analysis={"maxErrorRate": 0.05, "minRequests": 10, "failureLimit": 2},
    )
    started = time.monotonic()
    with load((servers["stable"], 0), (servers["faulty"], 4)):  # 1 of every 4 fails
        create(custom, body)
        status, seen = watch_weights(
            custom, "failing", lambda s: s.get("phase") == "RolledBack", 60
        )
    TIMINGS["rollback"] = seen
    TIMINGS["rollback_seconds"] = round(time.monotonic() - started, 2)
    assert status["canaryWeight"] == 0
    assert status["stable"]["digest"] == artifacts["good"][1]
    assert "promoted" not in status
    degraded = condition(status, "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "AnalysisFailed"
    measured = re.search(r"error rate ([0-9.]+) > maxErrorRate 0.05", degraded["message"])
    assert measured, degraded["message"]
    assert float(measured.group(1)) == pytest.approx(0.25, abs=0.05)  # 1 of every 4 fails
    assert "maxErrorRate 0.05" in degraded["message"]
    assert status["analysis"]["verdict"] == "Failed"
    assert status["analysis"]["canary"]["errorRate"] == pytest.approx(0.25, abs=0.05)
    assert status["analysis"]["failures"] == 2
    canary_gone(cluster, "failing")
    cluster.kubectl(
        "wait", "-n", NAMESPACE, "--for=condition=RolledBack", "mdep/failing", "--timeout=10s"
    )
    assert condition(status, "RolledBack")["message"] == degraded["message"]
    assert condition(status, "Promoted")["status"] == "False"
    warnings = [(r, m) for t, r, m in events(cluster, "failing") if t == "Warning"]
    assert warnings
    assert warnings[0][0] == "AnalysisFailed"


def test_a_canary_worse_than_stable_by_the_margin_is_rolled_back(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    """An absolute bound it meets (maxErrorRate 0.5) does not save a canary that is worse than
    the stable variant by more than maxErrorRateIncrease, measured over the same interval."""
    artifacts = servers["artifacts"]
    body = manifest(
        "worse",
        artifacts["good"],
        artifacts["faulty"],
        traffic={"steps": [20, 50], "interval": "2s"},
        analysis={
            "maxErrorRate": 0.5,
            "maxErrorRateIncrease": 0.05,
            "minRequests": 10,
            "failureLimit": 2,
        },
    )
    with load((servers["stable"], 0), (servers["faulty"], 4)):  # 1 of every 4 fails
        create(custom, body)
        status, _ = watch_weights(custom, "worse", lambda s: s.get("phase") == "RolledBack", 60)
    rolled_back = condition(status, "RolledBack")
    assert rolled_back["status"] == "True"
    measured = re.search(
        r"error rate ([0-9.]+) > stable's ([0-9.]+) \+ maxErrorRateIncrease 0.05",
        rolled_back["message"],
    )
    assert measured, rolled_back["message"]
    assert float(measured.group(1)) == pytest.approx(0.25, abs=0.05)
    assert float(measured.group(2)) == pytest.approx(0.0, abs=0.01)
    assert status["analysis"]["stable"]["errorRate"] == pytest.approx(0.0, abs=0.01)
    canary_gone(cluster, "worse")


def test_restart_mid_rollout_carries_on(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    artifacts = servers["artifacts"]
    body = manifest(
        "restart",
        artifacts["good"],
        artifacts["good-v2"],
        traffic={"steps": [10, 20, 30, 40], "interval": "3s"},
        analysis={"maxErrorRate": 0.02, "minRequests": 10},
    )
    with load((servers["stable"], 0), (servers["good"], 0)):
        create(custom, body)
        _, seen = watch_weights(custom, "restart", lambda s: s.get("canaryWeight") == 20, 60)
        kill(operator)
        killed = read(custom, "restart")["status"]
        time.sleep(4)
        operator.start()
        status, more = watch_weights(custom, "restart", promoted, 90)
    seen += more
    TIMINGS["restart"] = seen
    weights = progression(seen)
    assert weights == sorted(weights), seen
    assert weights[0] == 10
    assert 10 not in weights[weights.index(20) :], f"restarted from the first step: {seen}"
    assert killed["analysis"]["step"] in (1, 2)
    assert status["stable"]["digest"] == artifacts["good-v2"][1]


def test_gateway_api_and_istio_routes_are_accepted(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    artifacts = servers["artifacts"]
    create(
        custom,
        manifest(
            "routes-gw",
            artifacts["good"],
            artifacts["good-v2"],
            traffic={"canaryWeight": 30},
            router={
                "provider": "gatewayAPI",
                "parentRefs": [{"name": "public", "namespace": "gw"}],
                "hosts": ["iris.example.com"],
            },
        ),
    )
    create(
        custom,
        manifest(
            "routes-istio",
            artifacts["good"],
            artifacts["good-v2"],
            traffic={"canaryWeight": 30},
            router={
                "provider": "istio",
                "gateways": ["istio-system/public"],
                "hosts": ["iris.example.com"],
            },
        ),
    )
    create(
        custom,
        manifest(
            "shadow",
            artifacts["good"],
            artifacts["good-v2"],
            strategy="shadow",
            router={"provider": "istio"},
        ),
    )

    def route(plural: str, group: str, version: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = custom.get_namespaced_custom_object(
                group, version, NAMESPACE, plural, name
            )
            return found
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    http = wait_for(
        "the HTTPRoute",
        lambda: route("httproutes", "gateway.networking.k8s.io", "v1", "routes-gw"),
        30,
    )
    backends = http["spec"]["rules"][-1]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in backends] == [
        ("routes-gw-stable", 70),
        ("routes-gw-canary", 30),
    ]
    assert http["spec"]["parentRefs"][0]["name"] == "public"
    vs = wait_for(
        "the VirtualService",
        lambda: route("virtualservices", "networking.istio.io", "v1", "routes-istio"),
        30,
    )
    assert [r["weight"] for r in vs["spec"]["http"][-1]["route"]] == [70, 30]
    mirror = wait_for(
        "the shadow VirtualService",
        lambda: route("virtualservices", "networking.istio.io", "v1", "shadow"),
        30,
    )
    assert mirror["spec"]["http"][-1]["mirror"]["host"].startswith("shadow-canary.")
    assert not exists(cluster, "Deployment", "routes-gw-router")
    status = wait_for("the status", lambda: read(custom, "routes-gw").get("status"), 30)
    assert status["url"] == "http://iris.example.com/v2/models/routes-gw"
    assert status["canaryWeight"] == 30


def test_route_forms_pass_server_side_validation(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    """Every split form (weights, sticky A/B, shadow, stable only) through a server dry run."""
    from mlops_operator.api.modeldeployment import Router
    from mlops_operator.traffic import Split, Sticky
    from mlops_operator.traffic.gateway import http_route
    from mlops_operator.traffic.istio import virtual_service

    router = Router.model_validate(
        {
            "provider": "gatewayAPI",
            "parentRefs": [{"name": "gw"}],
            "hosts": ["a.example.com"],
            "gateways": ["gw"],
        }
    )
    splits = [
        Split(),
        Split(canary_weight=0, canary=True),
        Split(canary_weight=100, canary=True),
        Split(canary_weight=40, canary=True, sticky=Sticky("header", "x-user")),
        Split(canary=True, mirror=True),
    ]
    objects = []
    for index, split in enumerate(splits):
        for build in (http_route, virtual_service):
            obj = build(f"form-{index}", NAMESPACE, split, router)
            objects.append(obj)
    cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--server-side",
        "--field-manager=tests",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )


def test_a_new_training_run_starts_a_canary_by_itself(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    """Continuous delivery: the canary follows the newest Succeeded TrainingJob by label."""
    artifacts = servers["artifacts"]
    model_store(cluster, NAMESPACE)
    body = manifest(
        "cd",
        artifacts["good"],
        None,
        traffic={"steps": [50], "interval": "2s"},
        analysis={"maxErrorRate": 0.02, "minRequests": 10},
    )
    body["spec"]["canary"] = {"model": {"selector": {"matchLabels": {"app": "iris-cd"}}}}
    with load((servers["stable"], 0), (servers["good"], 0)):
        create(custom, body)
        watch_weights(custom, "cd", lambda s: s.get("phase") in ("Stable", "Degraded"), 30)
        assert not exists(cluster, "Deployment", "cd-canary")
        started = time.monotonic()
        custom.create_namespaced_custom_object(
            "mlops.dev",
            "v1alpha1",
            NAMESPACE,
            "trainingjobs",
            {
                "apiVersion": "mlops.dev/v1alpha1",
                "kind": "TrainingJob",
                "metadata": {"name": "cd-run-1", "labels": {"app": "iris-cd"}},
                "spec": {
                    "dataset": {"builtin": "iris"},
                    "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
                    "backoffLimit": 0,
                },
            },
        )
        pod = wait_for(
            "the training Pod",
            lambda: next(
                iter(
                    p
                    for p in cluster.core.list_namespaced_pod(
                        NAMESPACE, label_selector="mlops.dev/trainingjob=cd-run-1"
                    ).items
                    if p.status.phase == "Running"
                ),
                None,
            ),
            60,
        )
        uri, digest = artifacts["good-v2"]
        cluster.set_pod_terminated(
            pod,
            0,
            json.dumps(
                {
                    "phase": "Succeeded",
                    "reason": "Trained",
                    "exitCode": 0,
                    "message": "trained LogisticRegression: accuracy=0.97",
                    "score": "accuracy=0.97",
                    "metrics": {"accuracy": 0.97},
                    "model": {"uri": "file://" + uri, "digest": digest, "version": "1"},
                }
            ),
        )
        status, seen = watch_weights(custom, "cd", promoted, 90)
    TIMINGS["continuous_delivery_seconds"] = round(time.monotonic() - started, 2)
    assert 50 in progression(seen), seen
    assert status["stable"]["digest"] == digest
    assert status["promoted"]["model"] == "cd-run-1"


def test_ab_test_reports_both_variants_and_promotes_only_when_asked(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    artifacts = servers["artifacts"]
    body = manifest(
        "ab",
        artifacts["good"],
        artifacts["good-v2"],
        strategy="abTest",
        abTest={"header": "x-user-id", "canaryPercent": 30},
        traffic={"interval": "2s"},
        analysis={"minRequests": 10},
    )
    with load((servers["stable"], 0), (servers["good"], 0)):
        create(custom, body)
        status, _ = watch_weights(
            custom,
            "ab",
            lambda s: bool(
                (s.get("analysis") or {}).get("verdict") and s["analysis"].get("stable")
            ),
            30,
        )
        assert status["phase"] == "Progressing"
        assert status["canaryWeight"] == 30
        assert status["analysis"]["stable"]["requests"] > 0
        assert status["analysis"]["canary"]["requests"] > 0
        conf = cluster.core.read_namespaced_config_map("ab-router", NAMESPACE).data["nginx.conf"]
        assert "map $http_x_user_id $mlops_key" in conf
        assert "30% canary;" in conf
        time.sleep(3)
        assert read(custom, "ab")["status"]["phase"] == "Progressing"  # never by itself
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, "ab", {"spec": {"abTest": {"promote": True}}}
        )
        status, _ = watch_weights(custom, "ab", promoted, 30)
    assert status["stable"]["digest"] == artifacts["good-v2"][1]


def router_proof(cluster: Cluster, name: str, env: dict[str, Any], feedback_token: str) -> None:
    """The router's proof: a Secret of its own, its snippet mounted into the router Pods, the
    token in the servers' environment, and in no ConfigMap."""
    import base64

    proof = cluster.core.read_namespaced_secret(f"{name}-router-token", NAMESPACE)
    assert proof.metadata.owner_references[0].name == name
    router_token = base64.b64decode(proof.data["token"]).decode()
    assert len(router_token) >= 40
    assert router_token != feedback_token
    snippet = base64.b64decode(proof.data["proxy-headers.conf"]).decode()
    assert snippet == f'proxy_set_header X-Mlops-Router "{router_token}";\n'
    assert env["MLOPS_ROUTER_TOKEN"].value_from.secret_key_ref.name == f"{name}-router-token"
    router_pods = client.AppsV1Api(cluster.api).read_namespaced_deployment(
        f"{name}-router", NAMESPACE
    )
    volumes = {v.name: v for v in router_pods.spec.template.spec.volumes}
    assert volumes["proof"].secret.secret_name == f"{name}-router-token"
    conf = cluster.core.read_namespaced_config_map(f"{name}-router", NAMESPACE)
    assert "include /etc/nginx/mlops-router/proxy-headers.conf;" in conf.data["nginx.conf"]
    assert router_token not in conf.data["nginx.conf"]


def test_each_modeldeployment_gets_network_policies_a_feedback_token_and_a_router_token(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    """The policies as the API server stored them; the Secret created once and never read by
    the operator; its token accepted by a real server, a forged one refused over HTTP."""
    import base64

    from model_server.testing import http

    artifacts = servers["artifacts"]
    create(custom, manifest("guarded", artifacts["good"], None))
    networking = client.NetworkingV1Api(cluster.api)

    def stored(name: str = "guarded-model-servers") -> Any:
        try:
            return networking.read_namespaced_network_policy(name, NAMESPACE)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    wait_for("the model servers' NetworkPolicy", lambda: stored() is not None, 60)
    policy = stored()
    assert policy.metadata.owner_references[0].name == "guarded"
    assert policy.spec.pod_selector.match_labels == {
        "mlops.dev/modeldeployment": "guarded",
        "app.kubernetes.io/component": "model-server",
    }
    inference, metrics = policy.spec.ingress
    assert [p.port for p in inference.ports] == [8080, 8081]
    assert [peer.pod_selector.match_labels for peer in inference._from] == [
        {"mlops.dev/modeldeployment": "guarded", "app.kubernetes.io/component": "router"}
    ]
    assert [p.port for p in metrics.ports] == [9090]
    # The policies are applied one after the other in the same pass: the router's may come later.
    wait_for("the router's NetworkPolicy", lambda: stored("guarded-router") is not None, 30)
    router = stored("guarded-router")
    assert [p.port for p in router.spec.ingress[0].ports] == [8080]

    secret = cluster.core.read_namespaced_secret("guarded-feedback", NAMESPACE)
    assert secret.metadata.owner_references[0].name == "guarded"
    token = base64.b64decode(secret.data["token"]).decode()
    assert len(token) >= 40
    server = client.AppsV1Api(cluster.api).read_namespaced_deployment("guarded-stable", NAMESPACE)
    env = {e.name: e for e in server.spec.template.spec.containers[0].env}
    assert env["MLOPS_FEEDBACK_TOKEN"].value_from.secret_key_ref.name == "guarded-feedback"
    assert env["MLOPS_METRICS_PORT"].value == "9090"
    router_proof(cluster, "guarded", env, token)

    # The operator may create Secrets and nothing else with them.
    review = client.AuthorizationV1Api(cluster.api)
    for verb, allowed in (("create", True), ("get", False), ("list", False), ("patch", False)):
        answer = review.create_subject_access_review(
            {
                "spec": {
                    "user": "system:serviceaccount:mlops-system:mlops-operator",
                    "resourceAttributes": {
                        "namespace": NAMESPACE,
                        "verb": verb,
                        "resource": "secrets",
                    },
                }
            }
        )
        assert answer.status.allowed is allowed, verb

    # The token the operator created opens feedback on a real server; a forged one does not.
    with model_server(
        *artifacts["good"], "stable", extra_env={"MLOPS_FEEDBACK_TOKEN": token}
    ) as real:
        row = {
            "id": "order-1001",
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
            ],
        }
        assert http(real.url, "POST", "/v2/models/iris/infer", row)[0] == 200
        feedback = {"id": "order-1001", "truth": [2]}
        path = "/v2/models/iris/feedback"
        assert http(real.url, "POST", path, feedback)[0] == 401
        forged = {"Authorization": "Bearer " + "x" * len(token)}
        assert http(real.url, "POST", path, feedback, headers=forged)[0] == 403
        good = {"Authorization": f"Bearer {token}"}
        assert (
            http(real.url, "POST", path, {"id": "order-1001", "truth": [0]}, headers=good)[0] == 200
        )
    delete(custom, "guarded")


def requests_sent(operator: OperatorProcess, cluster: Cluster | None = None) -> float:
    """The requests the operator sent about this module's namespace: from the API server's
    audit log (other modules' ModelDeployments elsewhere may still be rolling out), else the
    operator's own count of every request its controllers sent."""
    if cluster is not None and cluster.plane is not None and cluster.plane.audit_log.exists():
        path = f"/namespaces/{NAMESPACE}/"
        return sum(
            1
            for line in cluster.plane.audit_log.read_text(errors="replace").splitlines()
            if OPERATOR_USER in line and path in line and '"ResponseComplete"' in line
        )
    text = operator.get("/metrics", operator.metrics_port)
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlops_api_requests_total{")
    )


def settled(operator: OperatorProcess, cluster: Cluster) -> bool:
    """No request for 3 s (the Pods' readiness reached the status)."""
    before = requests_sent(operator, cluster)
    time.sleep(3)
    return requests_sent(operator, cluster) == before


def idle(body: dict[str, Any]) -> bool:
    status = body.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return (
        status.get("observedGeneration") == body["metadata"]["generation"]
        and status.get("phase") not in ("Progressing", "Paused")
        and conditions.get("Progressing") != "True"
    )


def test_an_idle_modeldeployment_costs_no_request_and_its_children_are_restored(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    """Idle: no request in 20 ticks (the operator used to send 14 a tick). A watch event
    wakes it: a deleted child is created again, a child edited by hand is put back. The
    request count is the whole operator's: the module's other ModelDeployments go first."""
    for other in custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]:
        delete(custom, other["metadata"]["name"])
    wait_for(
        "the other ModelDeployments gone",
        lambda: (
            not custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
        ),
        60,
    )
    create(custom, manifest("idle", servers["artifacts"]["good"], None))
    apps = client.AppsV1Api(cluster.api)
    wait_for(
        "idle Ready",
        lambda: (
            {"type": "Ready", "status": "True"}.items() <= ready_condition(custom, "idle").items()
        ),
        60,
    )
    wait_for("idle idle", lambda: idle(read(custom, "idle")), 30)
    wait_for("the last watch events of its rollout handled", lambda: settled(operator, cluster), 30)
    before = requests_sent(operator, cluster)
    time.sleep(10)  # 20 ticks of 0.5 s
    assert requests_sent(operator, cluster) - before == 0
    cluster.core.delete_namespaced_service("idle-stable", NAMESPACE)
    wait_for("idle-stable created again", lambda: exists(cluster, "Service", "idle-stable"), 20)
    apps.patch_namespaced_deployment("idle-stable", NAMESPACE, {"spec": {"replicas": 3}})
    wait_for(
        "idle-stable scaled back to 1",
        lambda: apps.read_namespaced_deployment("idle-stable", NAMESPACE).spec.replicas == 1,
        20,
    )
    delete(custom, "idle")


def ready_condition(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    conditions = (read(custom, name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def test_a_users_objects_of_a_childs_name_are_never_taken_over(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],
) -> None:
    """The user's Service `clash-stable` (another selector) and Deployment `clash-canary`
    exist before the ModelDeployment `clash`: Degraded (NameClash) naming the Service, which
    keeps its selector and gets no owner; once it is gone the ModelDeployment is served, and
    the user's Deployment survives every pass and the ModelDeployment's deletion."""
    apps = client.AppsV1Api(cluster.api)
    users_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "clash-stable", "namespace": NAMESPACE, "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    users_deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "clash-canary", "namespace": NAMESPACE, "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]},
            },
        },
    }
    cluster.apply(users_service, users_deployment, namespace=NAMESPACE)
    create(custom, manifest("clash", servers["artifacts"]["good"], None))

    def degraded() -> dict[str, Any] | None:
        conditions = (read(custom, "clash").get("status") or {}).get("conditions") or []
        found = next((c for c in conditions if c["type"] == "Degraded"), None)
        return found if found and found["reason"] == "NameClash" else None

    condition = wait_for("clash Degraded (NameClash)", degraded, 30)
    assert condition["status"] == "True"
    assert (
        "Service clash-stable exists and is not managed by this ModelDeployment"
        in (condition["message"])
    )
    service = cluster.core.read_namespaced_service("clash-stable", NAMESPACE)
    assert service.spec.selector == {"app": "web"}
    assert not service.metadata.owner_references
    assert not exists(cluster, "Deployment", "clash-stable")  # nothing half-applied
    cluster.core.delete_namespaced_service("clash-stable", NAMESPACE)
    wait_for(
        "clash Ready",
        lambda: ready_condition(custom, "clash").get("status") == "True",
        60,
    )
    degraded_now = next(
        c for c in read(custom, "clash")["status"]["conditions"] if c["type"] == "Degraded"
    )
    assert degraded_now["status"] == "False"
    assert apps.read_namespaced_deployment("clash-canary", NAMESPACE).metadata.labels == {
        "app": "web"
    }
    delete(custom, "clash")
    wait_for(
        "clash-stable gone with its owner",
        lambda: not exists(cluster, "Service", "clash-stable") or None,
        60,
    )
    assert exists(cluster, "Deployment", "clash-canary")
