"""Rollout control on a real control plane: blue-green switching and aborting at once (builtin
router and Gateway API); `kubectl mlops promote|pause|resume|abort|retry|history` (the plugin
found on PATH by kubectl itself) acting on running rollouts, and `kubectl mlops get -w` showing
one live in a real terminal (tmux), its screens captured."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.component.hooks import HookServer, hook_server

from .harness import Cluster, wait_for
from .operator_runner import OperatorProcess, install_crds, install_rbac, rbac_refusals
from .rollouts import Rollouts, condition, exists, kubectl_mlops, plugin_env, promoted
from .test_modeldeployment_controller import (  # noqa: F401 (servers: a fixture)
    install_route_crds,
    load,
    model,
    servers,
)

GROUP, VERSION, PLURAL = "mlops.dev", "v1alpha1", "modeldeployments"
NAMESPACE = "rollout-e2e"


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster,
    servers: dict[str, Any],  # noqa: F811
    hooks: HookServer,
) -> Iterator[OperatorProcess]:
    install_crds(cluster, ("TrainingJob", "ModelDeployment"))
    install_route_crds(cluster)
    kubeconfig = install_rbac(cluster)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    targets = {
        f"{NAMESPACE}/{name}": {
            "stable": [servers["stable"].metrics_url],
            "canary": [servers["good"].metrics_url],
        }
        for name in (
            "manual",
            "watched",
            "bluegreen",
            "bg-abort",
            "gated",
            "hook-fails",
            "told",
            "window",
        )
    }
    runner = OperatorProcess(
        kubeconfig,
        cluster.workdir,
        settings={
            "MLOPS_ANALYSIS_TICK_SECONDS": "0.5",
            "MLOPS_ROUTER_REPLICAS": "1",
            "MLOPS_METRICS_TARGETS": json.dumps(targets),
            # the chart's operator.notifications: every ModelDeployment's events
            "MLOPS_NOTIFICATIONS": json.dumps([{"name": "everyone", "url": hooks.url("/all")}]),
        },
    )
    runner.start()
    yield runner
    runner.stop()
    assert rbac_refusals(runner.logs()) == []


@pytest.fixture(scope="module")
def hooks() -> Iterator[HookServer]:
    """The test's webhook receiver on loopback (the operator runs on this machine)."""
    with hook_server() as server:
        yield server


@pytest.fixture
def custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


def rollouts(custom: client.CustomObjectsApi) -> Rollouts:
    return Rollouts(custom, NAMESPACE)


def deployment(name: str, stable: tuple[str, str], canary: tuple[str, str], **spec: Any) -> Any:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"stable": {"model": model(stable)}, "canary": {"model": model(canary)}, **spec},
    }


IDLE_SECONDS = 5.0
"""Longer than the wake-up delay and the test tick: nothing left that would reconcile."""


def test_kubectl_mlops_steers_a_running_rollout(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],  # noqa: F811
) -> None:
    """An hour-long interval: nothing moves unless a command moves it, at once."""
    artifacts = servers["artifacts"]
    body = deployment(
        "manual",
        artifacts["good"],
        artifacts["good-v2"],
        traffic={"steps": [10, 30, 60], "interval": "1h"},
    )
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
    wait_for(
        "the rollout at 10%", lambda: rollouts(custom).status_is("manual", "Progressing", 10), 30
    )
    started = time.monotonic()
    said = kubectl_mlops(cluster, NAMESPACE, "promote", "manual")
    assert "canary at 30%: promoted by hand" in said
    TIMES = {"promote": round(time.monotonic() - started, 2)}
    assert rollouts(custom).status_is("manual", "Progressing", 30)
    assert "paused at 30% (by hand)" in kubectl_mlops(cluster, NAMESPACE, "pause", "manual")
    assert rollouts(custom).status_is("manual", "Paused", 30)
    assert "resumed at 30%" in kubectl_mlops(cluster, NAMESPACE, "resume", "manual")
    assert rollouts(custom).status_is("manual", "Progressing", 30)
    started = time.monotonic()
    assert "aborted by hand at 30%" in kubectl_mlops(cluster, NAMESPACE, "abort", "manual")
    TIMES["abort"] = round(time.monotonic() - started, 2)
    status = rollouts(custom).read("manual")["status"]
    assert (status["phase"], status["stable"]["weight"]) == ("RolledBack", 100)
    rolled_back = condition(status, "RolledBack")
    assert (rolled_back["status"], rolled_back["reason"]) == ("True", "Aborted")
    wait_for(
        "the canary's servers gone",
        lambda: (
            not exists(lambda: apps(cluster).read_namespaced_deployment("manual-canary", NAMESPACE))
        ),
        60,
    )
    time.sleep(IDLE_SECONDS)  # an idle rollout: no timer and no child event left to wake it
    started = time.monotonic()
    assert "retried by hand" in kubectl_mlops(cluster, NAMESPACE, "retry", "manual")
    TIMES["retry"] = round(time.monotonic() - started, 2)
    assert rollouts(custom).status_is("manual", "Progressing", 10)
    assert "by hand (promote-full)" in kubectl_mlops(
        cluster, NAMESPACE, "promote", "manual", "--full"
    )
    assert rollouts(custom).read("manual")["status"]["phase"] == "Promoted"
    status, _ = rollouts(custom).watch("manual", promoted, 60)  # and handed off
    assert status["stable"]["digest"] == artifacts["good-v2"][1]
    history = kubectl_mlops(cluster, NAMESPACE, "history", "manual")
    lines = history.splitlines()
    assert lines[0].split()[:6] == ["STARTED", "FINISHED", "MODEL", "DIGEST", "OUTCOME", "MESSAGE"]
    assert [line.split()[4] for line in lines[1:]] == ["Aborted", "Promoted"], history
    # GitOps-safe: the spec was never edited (its generation is the one created).
    assert rollouts(custom).read("manual")["metadata"]["generation"] == 1
    (cluster.workdir / "rollout-control-timings.json").write_text(json.dumps(TIMES))
    print(f"\nkubectl mlops: seconds until acted on: {TIMES}")


def capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (hack/setup.sh)")
def test_get_w_shows_the_rollout_live_in_a_terminal(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],  # noqa: F811
) -> None:
    artifacts = servers["artifacts"]
    session = f"mlops-get-w-{os.getpid()}"
    env = plugin_env(cluster)
    command = f"kubectl mlops get watched -n {NAMESPACE} -w --every 0.5"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command],
        env=env,
        check=True,
    )
    screens: list[str] = []
    try:
        with load((servers["stable"], 0), (servers["good"], 0)):
            wait_for("get -w running", lambda: "not found" in capture(session) or None, 10)
            body = deployment(
                "watched",
                artifacts["good"],
                artifacts["good-v2"],
                traffic={"steps": [20, 50], "interval": "2s"},
                analysis={"minRequests": 10, "maxErrorRate": 0.05},
            )
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)

            def shows(text: str) -> str | None:
                screen = capture(session)
                if text in screen:
                    screens.append(screen)
                    return screen
                return None

            shows_progress = wait_for("Progressing on screen", lambda: shows("Progressing"), 30)
            promoted = wait_for(
                "Phase: Promoted on screen", lambda: shows("Phase:     Promoted"), 60
            )
    finally:
        screens.append(capture(session))
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
        (cluster.workdir / "get-w-screens.txt").write_text("\n\n=====\n\n".join(screens))
    assert "canary" in shows_progress
    assert "20%" in shows_progress
    analysis = promoted.split("Analysis:")[1].split("Conditions:")[0].splitlines()
    rows = [line.split() for line in analysis if "Passed" in line]
    # each judged interval keeps its own row, at the weight it was judged at
    assert [row[1] for row in rows] == ["20%", "50%"], promoted
    assert all(row[3].startswith("req=") and row[4] == "err=0.00%" for row in rows), promoted
    assert re.search(r"Promoted +True +Promoted", promoted), promoted
    print("\nget -w, the last screen:\n" + promoted)


def apps(cluster: Cluster) -> client.AppsV1Api:
    return client.AppsV1Api(cluster.api)


def test_blue_green_previews_switches_at_once_and_is_promoted(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],  # noqa: F811
) -> None:
    artifacts = servers["artifacts"]
    body = deployment(
        "bluegreen",
        artifacts["good"],
        artifacts["good-v2"],
        strategy="blueGreen",
        blueGreen={"scaleDownDelay": "4s"},
        traffic={"interval": "2s"},
        analysis={"minRequests": 10, "maxErrorRate": 0.05},
    )
    body["spec"]["stable"]["replicas"] = 2
    with load((servers["stable"], 0), (servers["good"], 0)):
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        _, seen = rollouts(custom).watch("bluegreen", lambda s: s.get("phase") == "Progressing", 30)
        preview = wait_for(
            "the preview Service",
            lambda: (
                exists(lambda: cluster.core.read_namespaced_service("bluegreen-preview", NAMESPACE))
                and cluster.core.read_namespaced_service("bluegreen-preview", NAMESPACE)
            ),
            20,
        )
        assert preview.spec.selector["mlops.dev/variant"] == "canary"
        candidate = wait_for(
            "the candidate at full size",
            lambda: (
                exists(
                    lambda: apps(cluster).read_namespaced_deployment("bluegreen-canary", NAMESPACE)
                )
                and apps(cluster).read_namespaced_deployment("bluegreen-canary", NAMESPACE)
            ),
            20,
        )
        assert candidate.spec.replicas == 2
        status, more = rollouts(custom).watch(
            "bluegreen", lambda s: s.get("canaryWeight") == 100, 60
        )
        seen += more
        switched = condition(status, "Progressing")
        assert switched["reason"] == "Switched"
        old = apps(cluster).read_namespaced_deployment("bluegreen-stable", NAMESPACE)
        env = {e.name: e.value for e in old.spec.template.spec.containers[0].env}
        assert env["MLOPS_MODEL_DIGEST"] == artifacts["good"][1]  # kept for an instant abort
        conf = cluster.core.read_namespaced_config_map("bluegreen-router", NAMESPACE)
        assert "default canary;" in conf.data["nginx.conf"]
        status, more = rollouts(custom).watch("bluegreen", promoted, 60)
    seen += more
    weights = [w for _, phase, w in seen if phase == "Progressing"]
    assert sorted(set(weights)) == [0, 100], seen  # nothing in between: all at once
    assert status["stable"]["digest"] == artifacts["good-v2"][1]
    assert status["analysis"]["verdict"] == "Passed"
    wait_for(
        "the preview gone",
        lambda: (
            not exists(lambda: cluster.core.read_namespaced_service("bluegreen-preview", NAMESPACE))
        ),
        30,
    )
    print(f"\nblue-green: {seen}")


def test_blue_green_abort_after_the_switch_is_instant_with_gateway_api(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],  # noqa: F811
) -> None:
    artifacts = servers["artifacts"]
    body = deployment(
        "bg-abort",
        artifacts["good"],
        artifacts["good-v2"],
        strategy="blueGreen",
        blueGreen={"scaleDownDelay": "1h", "prePromotionAnalysis": False},
        traffic={"interval": "1s"},
        router={"provider": "gatewayAPI", "parentRefs": [{"name": "public"}]},
    )
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
    rollouts(custom).watch("bg-abort", lambda s: s.get("canaryWeight") == 100, 60)

    def backends() -> list[tuple[str, int]]:
        route = custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", "bg-abort"
        )
        return [(b["name"], b.get("weight", 1)) for b in route["spec"]["rules"][-1]["backendRefs"]]

    assert dict(backends()) == {"bg-abort-stable": 0, "bg-abort-canary": 100}
    stable_generation = (
        apps(cluster).read_namespaced_deployment("bg-abort-stable", NAMESPACE).metadata.generation
    )
    started = time.monotonic()
    kubectl_mlops(cluster, NAMESPACE, "abort", "bg-abort", "--no-wait")
    annotated = time.monotonic()
    wait_for(
        "the route back on the old variant",
        lambda: dict(backends()).get("bg-abort-canary", 0) == 0,
        30,
    )
    seconds = {
        "cli": round(annotated - started, 2),
        "route_after_annotation": round(time.monotonic() - annotated, 2),
    }
    # the route changes first, the status right after it
    status, _ = rollouts(custom).watch("bg-abort", lambda s: s.get("phase") == "RolledBack", 10)
    assert status["stable"]["digest"] == artifacts["good"][1]
    # the old variant was never touched: nothing to roll, the switch back is one route update
    assert (
        apps(cluster).read_namespaced_deployment("bg-abort-stable", NAMESPACE).metadata.generation
        == stable_generation
    )
    (cluster.workdir / "blue-green-abort-seconds.json").write_text(json.dumps(seconds))
    print(f"\nblue-green abort (seconds): {seconds}")


def test_a_confirm_promotion_gate_holds_until_the_webhook_answers_2xx(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],  # noqa: F811
    hooks: HookServer,
) -> None:
    artifacts = servers["artifacts"]
    hooks.codes["/approve"] = 403
    body = deployment(
        "gated",
        artifacts["good"],
        artifacts["good-v2"],
        traffic={"steps": [50], "interval": "2s"},
        analysis={"minRequests": 10, "maxErrorRate": 0.05},
        webhooks=[
            {"name": "approve", "type": "confirm-promotion", "url": hooks.url("/approve")},
            {"name": "load", "type": "rollout", "url": hooks.url("/load")},
            {"name": "done", "type": "post-rollout", "url": hooks.url("/done")},
        ],
    )
    with load((servers["stable"], 0), (servers["good"], 0)):
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)

        def waiting() -> dict[str, Any] | None:
            status = rollouts(custom).read("gated").get("status") or {}
            progressing = condition(status, "Progressing")
            return status if progressing.get("reason") == "WaitingForConfirmPromotion" else None

        status = wait_for("the confirm-promotion gate", waiting, 60)
        asked = len(hooks.bodies("/approve"))
        time.sleep(5)  # more than two intervals: the gate holds
        status = rollouts(custom).read("gated")["status"]
        assert (status["phase"], status["canaryWeight"]) == ("Progressing", 50)
        progressing = condition(status, "Progressing")
        assert progressing["reason"] == "WaitingForConfirmPromotion"
        assert "approve: HTTP 403" in progressing["message"]
        assert len(hooks.bodies("/approve")) > asked  # polled while it holds
        hooks.codes["/approve"] = 200
        opened = time.monotonic()
        status, _ = rollouts(custom).watch("gated", promoted, 30)
        seconds = round(time.monotonic() - opened, 2)
    assert status["stable"]["digest"] == artifacts["good-v2"][1]
    asked_body = hooks.bodies("/approve")[-1]
    assert (asked_body["name"], asked_body["type"], asked_body["weight"]) == (
        "gated",
        "confirm-promotion",
        50,
    )
    assert hooks.bodies("/load"), "the rollout hook is called every interval"
    assert [b["phase"] for b in hooks.bodies("/done")] == ["Promoted"]
    calls = {c["name"]: c for c in status["webhooks"]}
    assert (calls["approve"]["ok"], calls["approve"]["code"]) == (True, 200)
    print(f"\nconfirm-promotion: promoted {seconds}s after the gate answered 2xx")


def test_a_failing_rollout_hook_rolls_back(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],  # noqa: F811
    hooks: HookServer,
) -> None:
    artifacts = servers["artifacts"]
    hooks.codes["/smoke"] = 500
    body = deployment(
        "hook-fails",
        artifacts["good"],
        artifacts["good-v2"],
        traffic={"steps": [20, 50], "interval": "2s"},
        analysis={"minRequests": 10, "failureLimit": 2},
        webhooks=[
            {"name": "smoke", "type": "rollout", "url": hooks.url("/smoke"), "retries": 1},
        ],
    )
    with load((servers["stable"], 0), (servers["good"], 0)):  # the metrics are healthy
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        status, _ = rollouts(custom).watch(
            "hook-fails", lambda s: s.get("phase") == "RolledBack", 60
        )
    rolled_back = condition(status, "RolledBack")
    assert rolled_back["reason"] == "AnalysisFailed"
    assert "rollout webhook failed: smoke: HTTP 500" in rolled_back["message"]
    assert status["analysis"]["failures"] == 2
    smoke = next(c for c in status["webhooks"] if c["name"] == "smoke")
    assert (smoke["ok"], smoke["code"], smoke["attempts"]) == (False, 500, 2)
    warnings = cluster.core.list_namespaced_event(
        NAMESPACE, field_selector="involvedObject.name=hook-fails,reason=WebhookFailed"
    )
    assert warnings.items


def test_a_sink_gets_every_notification_in_order_while_a_dead_one_delays_nothing(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],  # noqa: F811
    hooks: HookServer,
) -> None:
    artifacts = servers["artifacts"]
    with socket.socket() as dead:  # accepts connections, never answers
        dead.bind(("127.0.0.1", 0))
        dead.listen(64)
        body = deployment(
            "told",
            artifacts["good"],
            artifacts["good-v2"],
            traffic={"steps": [20, 50], "interval": "2s"},
            analysis={"minRequests": 10, "maxErrorRate": 0.05},
            notifications=[
                {
                    "name": "dead",
                    "url": f"http://127.0.0.1:{dead.getsockname()[1]}/",
                    "timeout": "20s",  # 60 s and more for each notification
                },
                {"name": "team", "url": hooks.url("/team")},
                {"name": "chat", "url": hooks.url("/chat"), "format": "slack"},
            ],
        )
        started = time.monotonic()
        with load((servers["stable"], 0), (servers["good"], 0)):
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            _, seen = rollouts(custom).watch("told", promoted, 60)
        took = round(time.monotonic() - started, 2)
        wait_for("the promoted notification", lambda: len(hooks.bodies("/team")) >= 3, 10)
    team = hooks.bodies("/team")
    everyone = [b for b in hooks.bodies("/all") if b["name"] == "told"]
    for received in (team, everyone):
        assert [(b["event"], b["weight"]) for b in received] == [
            ("started", 20),
            ("step", 50),
            ("promoted", 0),
        ], received
    assert [b["text"].split()[2] for b in hooks.bodies("/chat")] == ["started", "step", "promoted"]
    assert took < 60, seen  # the dead sink's first notification alone takes 60 s
    print(f"\nnotifications: promoted {took}s after creation with a dead sink; {seen}")


def test_going_back_within_the_rollback_window_skips_the_steps(
    cluster: Cluster,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    servers: dict[str, Any],  # noqa: F811
) -> None:
    artifacts = servers["artifacts"]
    body = deployment(
        "window",
        artifacts["good"],
        artifacts["good-v2"],
        traffic={"steps": [20, 50], "interval": "1h"},
        rollbackWindow={"promotions": 2},
    )
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
    wait_for(
        "the rollout at 20%", lambda: rollouts(custom).status_is("window", "Progressing", 20), 30
    )
    kubectl_mlops(cluster, NAMESPACE, "promote", "window", "--full")
    status, _ = rollouts(custom).watch("window", promoted, 60)  # and handed off
    assert status["stable"]["digest"] == artifacts["good-v2"][1]
    # v2 turns out bad in production: go back to v1, which was stable one promotion ago
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        "window",
        {"spec": {"canary": {"model": model(artifacts["good"])}}},
    )
    status, seen = rollouts(custom).watch(
        "window",
        lambda s: promoted(s) and s["stable"]["digest"] == artifacts["good"][1],
        30,
    )
    assert [point for point in seen if point[1] == "Progressing"] == [], seen  # no steps
    outcome = condition(status, "Promoted")
    assert outcome["reason"] == "RollbackWindow"
    outcomes = [(r["digest"], r["outcome"]) for r in status["history"]]
    assert outcomes == [(artifacts["good-v2"][1], "Promoted"), (artifacts["good"][1], "Promoted")]
    history = kubectl_mlops(cluster, NAMESPACE, "history", "window")
    assert "rollbackWindow" in history
