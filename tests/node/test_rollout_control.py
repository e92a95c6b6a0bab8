"""Rollout control on the real node: one chart installation, the quickstart's two models trained
by real TrainingJob Pods, real model-server Pods behind the real nginx router Pods, and clients
on the node's host sending predictions through the router's Service (kube-proxy), each answer
recorded with the variant the router says served it (`x-mlops-served-by`) and the model
version the server answered with.

- blue-green: the candidate runs at the stable variant's full size behind the preview Service
  (the preview header reaches it through the router); the switch moves every client at once
  (weights 0 then 100, nothing between); `kubectl mlops abort` after the switch puts every
  client back on the old servers, which were never touched, within ABORT_BOUND seconds;
  `kubectl mlops retry` starts it again and `kubectl mlops promote` promotes it;
- `kubectl mlops promote`, `abort`, `retry` and `promote --full` act on a running canary, and
  the clients follow;
- a confirm-promotion gate (a webhook server on the node's address, which the operator's Pod
  reaches: the chart's NetworkPolicy restricts only the operator's ingress) holds the rollout,
  condition and reason naming the gate, until it answers 2xx; a notification sink of the
  ModelDeployment and the chart's operator-wide one get every rollout's notifications in order.

The three ModelDeployments are created together once the models are trained, so their Pods
start side by side (the module's wall time is the CI budget's); each test then drives its own.
The analysis tick is 1 s and the router runs one Pod (values of the installation below).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client

from mlops_operator.objects import LABEL_VARIANT, selector, selector_string
from mlops_operator.traffic.split import OVERRIDE_HEADER
from tests.cluster.harness import REPO, Cluster, wait_for
from tests.cluster.rollouts import Rollouts, condition, exists, kubectl_mlops, promoted
from tests.component.hooks import HookServer, hook_server

from .chart import Release, ready
from .clients import Client, Installation, is_, tear_down
from .host import NODE_ADDRESS
from .realnode import RealNode

ABORT_BOUND = 20.0
"""Seconds from `kubectl mlops abort` until every client gets the old variant: the router's
new Pod started and Ready, the old one out of the endpoints, and a keep-alive client's
connection to the old Pod closed by it (keepalive_time, 10 s)."""
HANDOFF_BOUND = 240.0
"""Seconds from Promoted until the promotion's hand-off is over (the stable servers roll to the
new model on real Pods, the canary's retire after the feedback grace): about 65 s here."""
TRAINED = ("cancer-v1", "cancer-v2")
GROUP, VERSION = "mlops.dev", "v1alpha1"


@dataclass(frozen=True)
class Model:
    digest: str
    version: str


@dataclass
class Control(Installation):
    hooks: HookServer
    models: dict[str, Model]

    def deployment(self, name: str) -> client.V1Deployment | None:
        apps = client.AppsV1Api(self.cluster.api)
        try:
            return apps.read_namespaced_deployment(name, self.namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def ready_servers(self, name: str, variant: str, count: int) -> list[client.V1Pod]:
        """The variant's model-server Pods once ``count`` of them are Ready (and no others)."""
        labels = selector_string(selector(name, "model-server", variant))

        def found() -> list[client.V1Pod] | None:
            pods = [
                p
                for p in self.release.pods(self.namespace, labels)
                if not p.metadata.deletion_timestamp
            ]
            up = [p for p in pods if ready(p)]
            return up if len(up) == count == len(pods) else None

        return wait_for(f"{count} {variant} server(s) of {name} Ready", found, 240)

    def sent_to_all(self, name: str) -> list[tuple[str, int]]:
        """The operator-wide sink's notifications of one ModelDeployment, in arrival order."""
        return [(b["event"], b["weight"]) for b in self.hooks.bodies("/all") if b["name"] == name]


def model(name: str) -> dict[str, Any]:
    return {"model": {"trainingJob": name}}


def bluegreen() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "bg"},
        "spec": {
            "stable": {**model("cancer-v1"), "replicas": 2},
            "canary": model("cancer-v2"),
            "strategy": "blueGreen",
            # the old variant stays long enough to abort; promotion by hand
            "blueGreen": {"scaleDownDelay": "10m"},
            "traffic": {"interval": "5s"},
            "analysis": {"minRequests": 10, "maxErrorRate": 0.05},
        },
    }


def manual() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "manual"},
        # an hour-long interval: nothing moves unless a command moves it
        "spec": {
            "stable": model("cancer-v1"),
            "canary": model("cancer-v2"),
            "traffic": {"steps": [20, 50], "interval": "1h"},
        },
    }


def gated(hooks: HookServer) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "gated"},
        "spec": {
            "stable": model("cancer-v1"),
            "canary": model("cancer-v2"),
            "traffic": {"steps": [20, 50], "interval": "4s"},
            "analysis": {"minRequests": 5, "maxErrorRate": 0.05},
            "webhooks": [
                {"name": "approve", "type": "confirm-promotion", "url": hooks.url("/approve")},
                {"name": "done", "type": "post-rollout", "url": hooks.url("/done")},
            ],
            "notifications": [{"name": "team", "url": hooks.url("/team")}],
        },
    }


def hook_fails(hooks: HookServer) -> dict[str, Any]:
    """A rollout webhook (called every interval) that answers 500: no client sends to it, so
    its analysis alone would hold (too few requests), never roll back."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "hook-fails"},
        "spec": {
            "stable": model("cancer-v1"),
            "canary": model("cancer-v2"),
            "traffic": {"steps": [20, 50], "interval": "3s"},
            "analysis": {"minRequests": 10, "failureLimit": 2},
            "webhooks": [
                {"name": "smoke", "type": "rollout", "url": hooks.url("/smoke"), "retries": 1}
            ],
        },
    }


def window() -> dict[str, Any]:
    """Steps an hour apart, and a rollback window of two promotions."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "window"},
        "spec": {
            "stable": model("cancer-v1"),
            "canary": model("cancer-v2"),
            "traffic": {"steps": [20, 50], "interval": "1h"},
            "rollbackWindow": {"promotions": 2},
        },
    }


@pytest.fixture(scope="module")
def hooks(node: RealNode) -> Iterator[HookServer]:
    """The webhook receiver on the node's address on the bridge: the operator's Pod reaches it
    as it would reach any service outside the cluster."""
    with hook_server(NODE_ADDRESS) as server:
        yield server


@pytest.fixture(scope="module")
def control(cluster: Cluster, node: RealNode, hooks: HookServer) -> Iterator[Control]:
    env = [{"name": "MLOPS_ANALYSIS_TICK_SECONDS", "value": "1"}]
    sinks = [{"name": "everyone", "url": hooks.url("/all")}]
    values = (
        "--set=operator.routerReplicas=1",
        f"--set-json=operator.extraEnv={json.dumps(env)}",
        f"--set-json=operator.notifications={json.dumps(sinks)}",
    )
    release = Release.create(cluster, node, "rollctl", "rollctl", values=values)
    started = time.monotonic()
    found: Control | None = None
    try:
        release.run("install")
        cluster.apply_files(
            REPO / "examples/quickstart/01-trainingjob-v1.yaml",
            REPO / "examples/quickstart/02-trainingjob-v2.yaml",
            namespace=release.watch,
        )
        release.run("trained")
        node.e2e_timings["rollout control: install -> trained"] = round(
            time.monotonic() - started, 1
        )
        custom = client.CustomObjectsApi(cluster.api)
        models = {}
        for job in TRAINED:
            tj = custom.get_namespaced_custom_object(
                GROUP, VERSION, release.watch, "trainingjobs", job
            )
            models[job] = Model(tj["status"]["model"]["digest"], tj["status"]["model"]["version"])
        hooks.codes["/approve"] = 403
        hooks.codes["/smoke"] = 500
        rollouts = Rollouts(custom, release.watch)
        for body in (bluegreen(), manual(), gated(hooks), hook_fails(hooks), window()):
            rollouts.create(body)
        found = Control(release, rollouts, hooks, models)
        yield found
    finally:
        tear_down(
            release,
            node,
            found,
            prefix="rollout-control",
            label="rollout control",
            started=started,
        )


@dataclass
class BlueGreen:
    """What the blue-green tests hand on to each other (they run in order)."""

    live: Client  # keep-alive, as most HTTP clients
    fresh: Client  # a connection per request: the Service's endpoints, without keep-alive
    stable_pods: set[str]
    stable_generation: int
    previewing: Client | None = None  # keep-alive, with the preview header
    seen: list[Any] = field(default_factory=list)

    def clients(self) -> list[Client]:
        return [self.live, self.fresh, *([self.previewing] if self.previewing else [])]


BG = "bg"


@pytest.fixture(scope="module")
def blue_green(control: Control) -> BlueGreen:
    """The preview ready at full size, and live clients sending through the router (none to
    the preview yet: without its requests the pre-promotion analysis cannot pass)."""
    c = control
    stable = c.ready_servers(BG, "stable", 2)
    c.ready_servers(BG, "canary", 2)
    deployment = c.deployment(f"{BG}-stable")
    assert deployment is not None
    return BlueGreen(
        c.client(BG),
        c.client(BG, keepalive=False),
        {p.metadata.name for p in stable},
        deployment.metadata.generation,
    )


def test_blue_green_runs_the_candidate_at_full_size_behind_the_preview(
    control: Control, blue_green: BlueGreen
) -> None:
    c = control
    v1, v2 = c.models["cancer-v1"].version, c.models["cancer-v2"].version
    candidates = c.ready_servers(BG, "canary", 2)
    preview = c.cluster.core.read_namespaced_service(f"{BG}-preview", c.namespace)
    assert preview.spec.selector[LABEL_VARIANT] == "canary"
    discovery = client.DiscoveryV1Api(c.cluster.api)

    def preview_endpoints() -> set[str] | None:
        slices = discovery.list_namespaced_endpoint_slice(
            c.namespace, label_selector=f"kubernetes.io/service-name={BG}-preview"
        ).items
        addresses = {
            address
            for s in slices
            for e in s.endpoints or []
            if e.conditions.ready
            for address in e.addresses
        }
        return addresses if len(addresses) == 2 else None

    endpoints = wait_for("the preview Service's 2 ready endpoints", preview_endpoints, 60)
    assert endpoints == {p.status.pod_ip for p in candidates}
    stable, canary = c.deployment(f"{BG}-stable"), c.deployment(f"{BG}-canary")
    assert stable is not None
    assert canary is not None
    assert canary.spec.replicas == stable.spec.replicas == 2
    # Live traffic all on the old variant (no switch without the preview's requests)...
    assert c.status(BG)["canaryWeight"] == 0
    time.sleep(2)
    for live in (blue_green.live, blue_green.fresh):
        answered = [a for a in live.snapshot() if a.code == 200]
        assert len(answered) >= 10
        assert all(is_("stable", v1)(a) for a in answered), answered[-5:]
    # ...and the preview header reaches the candidate through the router.
    blue_green.previewing = previewing = c.client(BG, headers={OVERRIDE_HEADER: "canary"})
    wait_for("10 answers from the preview", lambda: len(previewing.snapshot()) >= 10, 30)
    previewed = previewing.snapshot()
    assert all(is_("canary", v2)(a) for a in previewed), previewed[-5:]


def test_blue_green_switch_moves_every_client_at_once(
    control: Control, blue_green: BlueGreen
) -> None:
    """The pre-promotion analysis judges the preview's traffic, then the switch: 0 -> 100."""
    c, bg = control, blue_green
    v1, v2 = c.models["cancer-v1"].version, c.models["cancer-v2"].version
    status, seen = c.rollouts.watch(BG, lambda s: s.get("canaryWeight") == 100, 120)
    switched = time.monotonic()
    bg.seen += seen
    assert condition(status, "Progressing")["reason"] == "Switched", status
    assert status["analysis"]["verdict"] == "Passed", status["analysis"]
    for live in (bg.live, bg.fresh):
        answered = [a for a in live.snapshot() if a.at < switched - 1 and a.code == 200]
        assert all(is_("stable", v1)(a) for a in answered), answered[-5:]
    moved = {"keepalive": bg.live.moved(switched, is_("canary", v2))}
    moved["fresh"] = bg.fresh.moved(switched, is_("canary", v2))
    c.numbers["blue-green switch: seconds until every client is on the candidate"] = moved
    c.numbers["blue-green switch: answers meanwhile (keep-alive)"] = bg.live.mixed(
        switched, switched + moved["keepalive"]
    )
    errors = [a for live in bg.clients() for a in live.errors()]
    assert not errors, errors


def test_blue_green_abort_after_the_switch_is_instant(
    control: Control, blue_green: BlueGreen
) -> None:
    """The old servers, never touched, take every client back within ABORT_BOUND seconds."""
    c, bg = control, blue_green
    v1 = c.models["cancer-v1"].version
    started = time.monotonic()
    said = kubectl_mlops(c.cluster, c.namespace, "abort", BG)
    acted = round(time.monotonic() - started, 2)
    assert "aborted by hand at 100%" in said, said
    back = {
        "keepalive": bg.live.moved(started, is_("stable", v1)),
        "fresh": bg.fresh.moved(started, is_("stable", v1)),
    }
    c.numbers["blue-green abort: seconds from kubectl mlops abort"] = {
        "the command returned (operator acted)": acted,
        **back,
    }
    assert max(back.values()) < ABORT_BOUND, back
    status = c.status(BG)
    assert status["phase"] == "RolledBack"
    rolled_back = condition(status, "RolledBack")
    assert (rolled_back["status"], rolled_back["reason"]) == ("True", "Aborted")
    stable = c.deployment(f"{BG}-stable")
    assert stable is not None
    assert stable.metadata.generation == bg.stable_generation
    assert {p.metadata.name for p in c.ready_servers(BG, "stable", 2)} == bg.stable_pods
    errors = [a for live in bg.clients() for a in live.errors()]
    assert not errors, errors


def test_blue_green_retried_then_promoted_by_hand(control: Control, blue_green: BlueGreen) -> None:
    c, bg = control, blue_green
    v2 = c.models["cancer-v2"].version
    assert "retried by hand" in kubectl_mlops(c.cluster, c.namespace, "retry", BG)
    retried = time.monotonic()
    c.ready_servers(BG, "canary", 2)
    _, seen = c.rollouts.watch(BG, lambda s: s.get("canaryWeight") == 100, 120)
    bg.seen += seen
    switched = time.monotonic()
    c.numbers["blue-green retry: seconds to the switch"] = round(switched - retried, 2)
    bg.live.moved(switched, is_("canary", v2))
    weights = sorted({w for _, phase, w in bg.seen if phase == "Progressing"})
    assert weights == [0, 100], bg.seen  # nothing between: all at once, twice
    promoting = time.monotonic()
    said = kubectl_mlops(c.cluster, c.namespace, "promote", BG)
    assert "promoted" in said, said
    assert c.status(BG)["phase"] == "Promoted"
    status, _ = c.rollouts.watch(BG, promoted, HANDOFF_BOUND)  # the stable servers moved
    assert status["stable"]["digest"] == c.models["cancer-v2"].digest
    moved = bg.live.moved(promoting, is_("stable", v2), timeout=180)
    c.numbers["blue-green promote: seconds until the stable servers answer with v2"] = moved
    c.numbers["blue-green promote: answers meanwhile (keep-alive)"] = bg.live.mixed(
        promoting, promoting + moved
    )
    wait_for(
        "the preview Service and the candidate's servers gone",
        lambda: (
            not exists(lambda: c.cluster.core.read_namespaced_service(f"{BG}-preview", c.namespace))
            and c.deployment(f"{BG}-canary") is None
        ),
        60,
    )
    wait_for("the promoted notification", lambda: len(c.sent_to_all(BG)) >= 6, 15)
    assert c.sent_to_all(BG) == [
        ("started", 0),
        ("step", 100),
        ("rolledBack", 0),
        ("started", 0),
        ("step", 100),
        ("promoted", 0),
    ]
    c.numbers["blue-green retry and promotion: failed answers (seconds after retry, code)"] = [
        (round(a.at - retried, 2), a.code) for live in bg.clients() for a in live.errors(retried)
    ]
    for live in bg.clients():
        live.stop()


def test_kubectl_mlops_promote_abort_retry_act_on_a_running_canary(control: Control) -> None:
    c, name = control, "manual"
    v1, v2 = c.models["cancer-v1"].version, c.models["cancer-v2"].version
    numbers: dict[str, Any] = {}
    c.numbers["canary by hand"] = numbers
    wait_for("the canary at 20%", lambda: c.rollouts.status_is(name, "Progressing", 20), 60)
    c.ready_servers(name, "canary", 1)
    live = c.client(name)
    wait_for("the canary answering", lambda: any(is_("canary", v2)(a) for a in live.answers), 60)
    timed: dict[str, float] = {}

    def run(*args: str) -> str:
        started = time.monotonic()
        said = kubectl_mlops(c.cluster, c.namespace, *args, name)
        timed[" ".join(args)] = round(time.monotonic() - started, 2)
        return said

    assert "canary at 50%: promoted by hand" in run("promote")
    assert c.rollouts.status_is(name, "Progressing", 50)
    router = c.cluster.core.read_namespaced_config_map(f"{name}-router", c.namespace)
    assert "50% canary;" in router.data["nginx.conf"]
    aborting = time.monotonic()
    assert "aborted by hand at 50%" in run("abort")
    numbers["abort_to_stable_only_s"] = live.moved(aborting, is_("stable", v1))
    assert numbers["abort_to_stable_only_s"] < ABORT_BOUND, numbers
    status = c.status(name)
    assert (status["phase"], status["stable"]["weight"]) == ("RolledBack", 100)
    assert condition(status, "RolledBack")["reason"] == "Aborted"
    assert not live.errors(), live.errors()
    retrying = time.monotonic()
    assert "retried by hand" in run("retry")
    assert c.rollouts.status_is(name, "Progressing", 20)
    wait_for(
        "the canary answering again",
        lambda: any(is_("canary", v2)(a) for a in live.snapshot(retrying)),
        120,
    )
    numbers["retry_to_canary_answer_s"] = round(
        next(a.at for a in live.snapshot(retrying) if is_("canary", v2)(a)) - retrying, 2
    )
    numbers["errors_after_retry"] = [
        (round(a.at - retrying, 2), a.code) for a in live.errors(retrying)
    ]
    promoting = time.monotonic()
    assert "by hand (promote-full)" in run("promote", "--full")
    assert c.status(name)["phase"] == "Promoted"
    status, _ = c.rollouts.watch(name, promoted, HANDOFF_BOUND)
    assert status["stable"]["digest"] == c.models["cancer-v2"].digest
    numbers["promote_full_to_v2_only_s"] = live.moved(promoting, is_("stable", v2), timeout=180)
    numbers["errors_during_promotion"] = [
        (round(a.at - promoting, 2), a.code) for a in live.errors(promoting)
    ]
    numbers["kubectl_mlops_s"] = timed
    history = kubectl_mlops(c.cluster, c.namespace, "history", name).splitlines()
    assert [line.split()[4] for line in history[1:]] == ["Aborted", "Promoted"], history
    assert c.rollouts.read(name)["metadata"]["generation"] == 1  # the spec never edited
    wait_for("the promoted notification", lambda: len(c.sent_to_all(name)) >= 5, 15)
    assert c.sent_to_all(name) == [
        ("started", 20),
        ("step", 50),
        ("rolledBack", 0),
        ("started", 20),
        ("promoted", 0),
    ]
    live.stop()


def test_a_confirm_promotion_gate_holds_until_its_webhook_answers_2xx_and_sinks_hear_it_all(
    control: Control,
) -> None:
    c, name, hooks = control, "gated", control.hooks
    numbers: dict[str, Any] = {}
    c.numbers["confirm-promotion gate"] = numbers
    c.ready_servers(name, "canary", 1)
    live = c.client(name, rps=15)  # the analysis needs the canary's requests

    def waiting() -> dict[str, Any] | None:
        status = c.status(name)
        reason = condition(status, "Progressing").get("reason")
        return status if reason == "WaitingForConfirmPromotion" else None

    wait_for("the confirm-promotion gate", waiting, 120)
    gate_reached = time.monotonic()
    asked = len(hooks.bodies("/approve"))
    time.sleep(8)  # two analysis intervals: the gate holds
    status = c.status(name)
    assert (status["phase"], status["canaryWeight"]) == ("Progressing", 50), status
    progressing = condition(status, "Progressing")
    assert progressing["reason"] == "WaitingForConfirmPromotion"
    assert "confirm-promotion gate at 50%" in progressing["message"], progressing
    assert "approve: HTTP 403" in progressing["message"], progressing
    assert status["analysis"]["gate"] == "confirm-promotion"
    polled = len(hooks.bodies("/approve")) - asked
    assert polled >= 4, polled  # asked every tick (1 s) while it holds
    hooks.codes["/approve"] = 200
    opened = time.monotonic()
    c.rollouts.watch(name, lambda s: s.get("phase") == "Promoted", 30)
    numbers["held_s"] = round(opened - gate_reached, 2)
    numbers["polls_while_held"] = polled
    numbers["promoted_after_2xx_s"] = round(time.monotonic() - opened, 2)
    status, _ = c.rollouts.watch(name, promoted, HANDOFF_BOUND)
    assert status["stable"]["digest"] == c.models["cancer-v2"].digest
    asked_body = hooks.bodies("/approve")[-1]
    assert (asked_body["name"], asked_body["type"], asked_body["weight"]) == (
        name,
        "confirm-promotion",
        50,
    )
    calls = {call["name"]: call for call in status["webhooks"]}
    assert (calls["approve"]["ok"], calls["approve"]["code"]) == (True, 200)
    wait_for("the post-rollout hook", lambda: hooks.bodies("/done"), 15)
    assert [b["phase"] for b in hooks.bodies("/done")] == ["Promoted"]
    wait_for("the promoted notification", lambda: len(hooks.bodies("/team")) >= 3, 15)
    expected = [("started", 20), ("step", 50), ("promoted", 0)]
    team = hooks.bodies("/team")
    assert [(b["event"], b["weight"]) for b in team] == expected, team
    assert c.sent_to_all(name) == expected
    times = [b["time"] for b in team]
    assert times == sorted(times), times
    numbers["notifications"] = [f"{b['event']} {b['weight']}% {b['time']}" for b in team]
    assert not live.errors(), live.errors()
    live.stop()


def test_a_failing_rollout_webhook_rolls_back(control: Control) -> None:
    """The operator's Pod calls the hook on the node's address every interval; its 500s (one
    retry each) fail two intervals in a row, which roll the canary back."""
    c, name, hooks = control, "hook-fails", control.hooks
    status, _ = c.rollouts.watch(name, lambda s: s.get("phase") == "RolledBack", 180)
    rolled_back = condition(status, "RolledBack")
    assert rolled_back["reason"] == "AnalysisFailed", rolled_back
    assert "rollout webhook failed: smoke: HTTP 500" in rolled_back["message"], rolled_back
    assert status["analysis"]["failures"] == 2, status["analysis"]
    assert status["stable"]["weight"] == 100
    assert status["stable"]["digest"] == c.models["cancer-v1"].digest
    smoke = next(call for call in status["webhooks"] if call["name"] == "smoke")
    assert (smoke["ok"], smoke["code"], smoke["attempts"]) == (False, 500, 2), smoke
    asked = hooks.bodies("/smoke")
    assert len(asked) >= 4, asked  # two intervals, two attempts each
    assert {(b["name"], b["type"]) for b in asked} == {(name, "rollout")}, asked
    warnings = c.cluster.core.list_namespaced_event(
        c.namespace, field_selector=f"involvedObject.name={name},reason=WebhookFailed"
    )
    assert warnings.items
    assert status["history"][-1]["outcome"] == "RolledBack", status["history"]


def test_going_back_within_the_rollback_window_skips_the_steps(control: Control) -> None:
    """v2 promoted by hand; then v1, stable one promotion ago, put back in Git as the canary:
    promoted at once (no step, no analysis), and the clients are back on v1's servers."""
    c, name = control, "window"
    v1, v2 = c.models["cancer-v1"], c.models["cancer-v2"]
    wait_for("the canary at 20%", lambda: c.rollouts.status_is(name, "Progressing", 20), 120)
    c.ready_servers(name, "canary", 1)
    live = c.client(name)
    kubectl_mlops(c.cluster, c.namespace, "promote", name, "--full")
    status, _ = c.rollouts.watch(name, promoted, 240)  # and handed off
    assert status["stable"]["digest"] == v2.digest
    live.moved(time.monotonic(), is_("stable", v2.version), timeout=60)
    going_back = time.monotonic()
    c.rollouts.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        c.namespace,
        "modeldeployments",
        name,
        {"spec": {"canary": model("cancer-v1")}},
    )
    status, seen = c.rollouts.watch(
        name, lambda s: promoted(s) and s["stable"]["digest"] == v1.digest, 240
    )
    assert [point for point in seen if point[1] == "Progressing"] == [], seen  # no steps
    outcome = condition(status, "Promoted")
    assert outcome["reason"] == "RollbackWindow", outcome
    records = [(r["digest"], r["outcome"]) for r in status["history"]]
    assert records == [(v2.digest, "Promoted"), (v1.digest, "Promoted")], status["history"]
    c.numbers["rollback window: seconds until every client is on v1 again"] = live.moved(
        going_back, is_("stable", v1.version), timeout=180
    )
    assert "rollbackWindow" in kubectl_mlops(c.cluster, c.namespace, "history", name)
    c.numbers["rollback window: failed answers (seconds after going back, code)"] = [
        (round(a.at - going_back, 2), a.code) for a in live.errors(going_back)
    ]
    live.stop()
