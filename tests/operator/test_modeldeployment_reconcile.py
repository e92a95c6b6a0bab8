"""One ModelDeployment reconciliation over an in-memory API: resolve, decide, apply, write.

The client is a fake that keeps objects the way the API server would (server-side apply
replaces the object, Deployments report their replicas); the metrics source is a stand-in
that answers the numbers each test wants. Everything else is the operator's own code.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kopf
import pytest

from mlops_operator import kube
from mlops_operator.canary import VariantMetrics
from mlops_operator.controllers import modeldeployment as controller
from mlops_operator.controllers.children import Memory
from mlops_operator.controllers.errors import handling
from mlops_operator.metrics_sources import Reading, Window
from mlops_operator.objects import ANNOTATION_DIGEST as DIGEST
from mlops_operator.objects import Kind
from mlops_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit
V1 = {"uri": "pvc://mlops-models/ml/iris-v1/1", "digest": "sha256:" + "1" * 64}
V2 = {"uri": "pvc://mlops-models/ml/iris-v2/1", "digest": "sha256:" + "2" * 64}
SETTINGS = OperatorSettings(image="mlops-operator:test")
T0 = 1_800_000_000.0


class FakeApi:
    """Objects by (kind, name) in one namespace, stored as the API server would."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted: list[tuple[str, str]] = []
        self.applied: list[tuple[str, str]] = []
        self.reads = 0
        self.version = 100
        self.ready = False
        self.conflicts = 0
        self.rolling: set[str] = set()
        """Deployments whose newest template no replica runs yet."""
        self.unready: set[str] = set()
        """Deployments with no ready replica even when ``ready``."""
        self.terminating: dict[str, int] = {}
        """Pods of a Deployment (by name) that are terminating: status.terminatingReplicas."""

    def put(self, obj: dict[str, Any]) -> None:
        self.objects[obj["kind"], obj["metadata"]["name"]] = obj

    def get(self, kind_: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        found = self.objects.get((kind_.kind, name))
        if found and found["kind"] == "Deployment":
            found["status"] = self._deployment_status(found)
        return copy.deepcopy(found) if found else None

    def _deployment_status(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        replicas, name = stored["spec"].get("replicas", 1), stored["metadata"]["name"]
        rolling = name in self.rolling
        return {
            "observedGeneration": stored["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": 0 if rolling else replicas,
            "readyReplicas": replicas if self.ready and name not in self.unready else 0,
            **({"terminatingReplicas": self.terminating[name]} if name in self.terminating else {}),
        }

    def list_(self, kind_: Kind, namespace: str, selector: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, _), o in self.objects.items() if k == kind_.kind]

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        before = self.objects.get((obj["kind"], obj["metadata"]["name"])) or {}
        uid = obj["metadata"].get("uid")
        if uid is not None and uid != (before.get("metadata") or {}).get("uid"):
            # tests/cluster/test_server_side_apply.py: 409 when none exists, 422 otherwise
            raise kube.Replaced(f"{obj['kind']} {obj['metadata']['name']}: not {uid}", 409)
        self.applied.append((obj["kind"], obj["metadata"]["name"]))
        stored = copy.deepcopy(dict(obj))
        generation = (before.get("metadata") or {}).get("generation", 0)
        if before.get("spec") != stored.get("spec"):
            generation += 1
        self.version += 1
        uid = (before.get("metadata") or {}).get("uid") or f"uid-{self.version}"
        stored["metadata"].update(generation=generation, resourceVersion=str(self.version), uid=uid)
        if stored["kind"] == "Deployment":
            stored["status"] = self._deployment_status(stored)
        self.put(stored)
        return copy.deepcopy(stored)

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        if (obj["kind"], obj["metadata"]["name"]) in self.objects:
            return None
        return self.apply(obj)

    def delete(self, api_version: str, kind_name: str, namespace: str, name: str) -> bool:
        self.deleted.append((kind_name, name))
        return self.objects.pop((kind_name, name), None) is not None

    def replace_status(self, kind_: Kind, body: Mapping[str, Any]) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise kube.Conflict("changed", 409)
        stored = self.objects[kind_.kind, body["metadata"]["name"]]
        stored["status"] = copy.deepcopy(body["status"])

    @property
    def status(self) -> dict[str, Any]:
        return self.objects["ModelDeployment", "iris"].get("status") or {}

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.status["conditions"] if c["type"] == type_)


class Numbers:
    """A metrics source answering the canary's numbers for every window."""

    def __init__(self, canary: VariantMetrics) -> None:
        self.canary = canary
        self.windows: list[Window] = []

    def measure(self, window: Window) -> Reading:
        self.windows.append(window)
        return Reading({"stable": self.canary, "canary": self.canary}, None)

    def begin(self, window: Window) -> None:
        return None


def trainingjob(name: str, phase: str, model: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": "ml"},
        "status": {"phase": phase, "model": model if phase == "Succeeded" else {}},
    }


def modeldeployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u-1", "generation": 1},
        "spec": {
            "stable": {"model": {"trainingJob": "iris-v1"}},
            "traffic": {"steps": [20, 50], "interval": "30s"},
            **spec,
        },
    }


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(
        kopf, "event", lambda _ref, *, type, reason, message: events.append((type, reason))
    )
    monkeypatch.setattr(
        kopf, "warn", lambda _ref, *, reason, message: events.append(("Warning", reason))
    )
    fake = FakeApi()
    fake.events = events  # type: ignore[attr-defined]
    return fake


def reconcile(api: FakeApi, now: float, *, cleanup: bool = False) -> str | None:
    return controller.reconcile(
        "ml", "iris", cleanup=cleanup, client=api, settings=SETTINGS, now=now
    )


def hand_off(api: FakeApi, start: float, *, passes: int = 20) -> float:
    """Reconciles every 5 s from ``start`` until the promotion's hand-off is over; the time."""
    now = start
    for _ in range(passes):
        reconcile(api, now)
        if "handoff" not in api.status:
            return now
        now += 5
    raise AssertionError(f"the hand-off did not end: {api.status['handoff']}")


def canary_spec() -> dict[str, Any]:
    return {"canary": {"model": {"trainingJob": "iris-v2"}}}


def with_numbers(monkeypatch: pytest.MonkeyPatch, canary: VariantMetrics) -> Numbers:
    source = Numbers(canary)
    monkeypatch.setattr(controller, "source_for", lambda _spec, _selector, _sources=None: source)
    return source


def test_an_invalid_spec_fails_with_the_field_named(api: FakeApi) -> None:
    api.put(modeldeployment(traffic={"interval": "soon"}))
    problem = reconcile(api, T0)
    assert problem is not None
    assert "interval" in problem
    assert api.status["phase"] == "Failed"
    assert api.condition("Degraded")["reason"] == "InvalidSpec"
    assert api.condition("Ready")["status"] == "False"
    assert [k for k, _ in api.objects] == ["ModelDeployment"]


def test_waits_for_the_stable_trainingjob(api: FakeApi) -> None:
    api.put(modeldeployment())
    api.put(trainingjob("iris-v1", "Running", V1))
    assert reconcile(api, T0) is None
    ready = api.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "WaitingForTrainingJob")
    assert "iris-v1 is Running" in api.status["message"]
    assert [k for k, _ in api.objects] == ["ModelDeployment", "TrainingJob"]


def owned_route(uid: str) -> dict[str, Any]:
    owner = {"kind": "ModelDeployment", "name": "iris", "uid": uid, "controller": True}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "iris", "namespace": "ml", "ownerReferences": [owner]},
    }


def test_serves_the_stable_model_and_owns_its_children(api: FakeApi) -> None:
    api.put({**modeldeployment(), "status": {"phase": "Stable"}})  # served before
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(owned_route("u-1"))  # left by the gatewayAPI provider before a switch to nginx
    reconcile(api, T0, cleanup=True)
    assert api.status["phase"] == "Degraded"  # no model server ready yet
    assert api.condition("Ready")["reason"] == "ModelServersNotReady"
    deployment = api.objects["Deployment", "iris-stable"]
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MLOPS_MODEL_DIGEST"] == V1["digest"]
    assert ("Deployment", "iris-router") in api.objects
    assert api.deleted == [("HTTPRoute", "iris")]  # only what exists: the other provider's route
    assert ("NetworkPolicy", "iris-model-servers") in api.objects
    secret = api.objects["Secret", "iris-feedback"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    token = secret["data"]["token"]
    reconcile(api, T0 + 1)
    assert api.objects["Secret", "iris-feedback"]["data"]["token"] == token  # never rewritten
    api.ready, api.unready = True, {"iris-router"}
    reconcile(api, T0 + 3)
    ready = api.condition("Ready")  # kubectl wait --for=condition=Ready: requests get through
    assert (ready["status"], ready["reason"]) == ("False", "RouterNotReady"), ready
    api.unready = set()
    reconcile(api, T0 + 5)
    assert api.condition("Ready")["status"] == "True"
    assert api.status["phase"] == "Stable"
    assert api.status["stable"]["readyReplicas"] == 1
    assert api.status["url"] == "http://iris.ml.svc.cluster.local/v2/models/iris"
    assert api.status["observedGeneration"] == 1


def test_a_healthy_canary_walks_its_steps_to_promotion(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.0))
    api.ready = True
    api.put(modeldeployment(**canary_spec()))
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(trainingjob("iris-v2", "Succeeded", V2))
    reconcile(api, T0)
    assert (api.status["phase"], api.status["canaryWeight"]) == ("Progressing", 20)
    assert api.condition("Promoted")["status"] == api.condition("RolledBack")["status"] == "False"
    assert api.status["canary"]["digest"] == V2["digest"]
    assert ("Deployment", "iris-canary") in api.objects
    reconcile(api, T0 + 10)  # the interval is not over: nothing measured, nothing moves
    assert source.windows == []
    assert api.status["canaryWeight"] == 20
    reconcile(api, T0 + 31)
    assert api.status["canaryWeight"] == 50
    assert api.status["analysis"]["verdict"] == "Passed"
    assert source.windows[0].since == pytest.approx(T0)
    reconcile(api, T0 + 62)
    assert api.status["phase"] == "Promoted"
    assert api.status["promoted"]["replaces"] == V1["digest"]
    hand_off(api, T0 + 63)
    assert api.status["stable"]["digest"] == V2["digest"]
    assert ("Deployment", "iris-canary") not in api.objects
    assert api.condition("Progressing")["reason"] == "Promoted"
    assert (api.condition("Promoted")["status"], api.condition("RolledBack")["status"]) == (
        "True",
        "False",
    )
    assert ("Normal", "Promoted") in api.events  # type: ignore[attr-defined]


def router_conf(api: FakeApi) -> str:
    return str(api.objects["ConfigMap", "iris-router"]["data"]["nginx.conf"])


def served_digest(api: FakeApi, variant: str) -> str:
    return str(api.objects["Deployment", f"iris-{variant}"]["metadata"]["annotations"][DIGEST])


def router_pod(api: FakeApi, *, current: bool = False) -> None:
    """A router Pod of an older configuration, still in its preStop pause; or (``current``)
    one of the configuration the router runs now, which the next configuration makes old."""
    template = api.objects["Deployment", "iris-router"]["spec"]["template"]["metadata"]
    checksum = template["annotations"]["mlops.dev/config-checksum"] if current else "sha256:old"
    meta: dict[str, Any] = {
        "name": "iris-router-old",
        "labels": {"mlops.dev/modeldeployment": "iris"},
        "annotations": {"mlops.dev/config-checksum": checksum},
    }
    if not current:
        meta["deletionTimestamp"] = "2027-01-15T08:00:00Z"
    api.put({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": {"phase": "Running"}})


CANARY_HOST = "server iris-canary.ml.svc.cluster.local:80;"
ALL_TO_CANARY = "map $request_id $mlops_split {\n        default canary;"
ALL_TO_STABLE = "map $request_id $mlops_split {\n        default stable;"


def test_a_promotion_hands_off_without_rolling_servers_under_traffic(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The soak's failures on the real node: the stable Pods rolled while they served and
    remembered ids; the canary went while a router Pod still sent to it. Now: all predictions
    to the canary; the stable servers roll once no router sends them any; all back to them,
    the canary taking feedback only for a grace; the canary goes once no router names it."""
    with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.0))
    api.ready = True
    api.put(modeldeployment(**canary_spec()))
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(trainingjob("iris-v2", "Succeeded", V2))
    reconcile(api, T0)
    reconcile(api, T0 + 31)
    router_pod(api)  # the router Pod of the 50 % step is still draining
    reconcile(api, T0 + 62)
    assert api.status["phase"] == "Promoted"
    assert (api.status["handoff"]["stage"], api.status["canaryWeight"]) == ("shift", 100)
    assert api.status["handoff"]["previous"]["digest"] == V1["digest"]
    assert api.condition("Progressing")["reason"] == "Promoting"
    assert ALL_TO_CANARY in router_conf(api)
    assert served_digest(api, "stable") == V1["digest"]  # not rolled under traffic
    reconcile(api, T0 + 67)
    assert api.status["handoff"]["stage"] == "shift"  # an older router Pod is left
    del api.objects["Pod", "iris-router-old"]
    api.rolling.add("iris-stable")
    reconcile(api, T0 + 70)  # settled: the next stage's children in the same pass
    assert api.status["handoff"]["stage"] == "roll"
    assert served_digest(api, "stable") == V2["digest"]
    assert ALL_TO_CANARY in router_conf(api)
    reconcile(api, T0 + 72)
    assert api.status["handoff"]["stage"] == "roll"  # the stable servers are rolling
    api.rolling.clear()
    reconcile(api, T0 + 75)
    assert api.status["handoff"]["stage"] == "switch"
    conf = router_conf(api)
    assert ALL_TO_STABLE in conf
    assert "upstream mlops_canary" not in conf
    assert CANARY_HOST in conf.split("upstream mlops_either")[1]  # feedback still reaches it
    assert ("Deployment", "iris-canary") in api.objects
    assert api.status["canaryWeight"] == 0
    assert api.status["stable"]["digest"] == V2["digest"]
    router_pod(api, current=True)  # it will still name the canary after the next change
    reconcile(api, T0 + 80)
    assert api.status["handoff"]["stage"] == "switch"  # the feedback grace
    reconcile(api, T0 + 85)
    assert api.status["handoff"]["stage"] == "retire"
    assert CANARY_HOST not in router_conf(api)
    assert ("Deployment", "iris-canary") in api.objects  # a router Pod still names it
    del api.objects["Pod", "iris-router-old"]
    reconcile(api, T0 + 90)
    assert ("Deployment", "iris-canary") not in api.objects
    assert ("Service", "iris-canary") not in api.objects
    assert "handoff" not in api.status
    assert (api.condition("Progressing")["status"], api.condition("Progressing")["reason"]) == (
        "False",
        "Promoted",
    )
    assert api.status["phase"] == "Promoted"


def test_a_canary_goes_only_once_no_router_pod_sends_to_it(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollback: the canary's Deployment and Service stay while a router Pod of the old
    configuration drains (it still sends to them: the soak's 502), then go."""
    with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.5))
    api.ready = True
    api.put(modeldeployment(**canary_spec()))
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(trainingjob("iris-v2", "Succeeded", V2))
    reconcile(api, T0)
    router_pod(api, current=True)
    for now in (T0 + 31, T0 + 62, T0 + 93):
        reconcile(api, now)
    assert api.status["phase"] == "RolledBack"
    assert ("Deployment", "iris-canary") in api.objects
    del api.objects["Pod", "iris-router-old"]
    reconcile(api, T0 + 94)
    assert ("Deployment", "iris-canary") not in api.objects


def test_a_failing_canary_rolls_back_with_the_numbers(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.5))
    api.ready = True
    api.put(modeldeployment(**canary_spec()))
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(trainingjob("iris-v2", "Succeeded", V2))
    reconcile(api, T0)
    reconcile(api, T0 + 31)
    assert api.status["analysis"]["failures"] == 1
    reconcile(api, T0 + 62)
    assert api.status["phase"] == "RolledBack"
    degraded = api.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "AnalysisFailed")
    assert "error rate 0.5000 > maxErrorRate 0.05" in degraded["message"]
    assert api.condition("RolledBack")["status"] == "True"
    assert api.condition("Promoted")["status"] == "False"
    assert api.status["stable"]["digest"] == V1["digest"]
    assert ("Warning", "AnalysisFailed") in api.events  # type: ignore[attr-defined]


def test_a_status_conflict_is_read_again(api: FakeApi) -> None:
    api.put(modeldeployment())
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.conflicts = 1
    reconcile(api, T0)
    assert api.status["stable"]["digest"] == V1["digest"]


@pytest.mark.parametrize(
    ("error", "delay"),
    [
        (kube.Conflict("changed", 409), 1),
        (kube.MissingKind("HTTPRoute is not served", 404), 60),
        (kube.KubeError("500 Internal Server Error", 500), 60),
    ],
)
def test_client_errors_become_kopf_retries(error: kube.KubeError, delay: float) -> None:
    with pytest.raises(kopf.TemporaryError) as raised, handling("ModelDeployment"):
        raise error
    assert raised.value.delay == delay


def test_a_second_pass_sends_nothing_that_did_not_change(api: FakeApi) -> None:
    api.put(modeldeployment())
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.ready = True
    memory = Memory()
    controller.reconcile("ml", "iris", client=api, settings=SETTINGS, now=T0, memory=memory)
    first = len(api.applied)
    assert first >= 5
    status = copy.deepcopy(api.status)
    api.reads = 0
    controller.reconcile("ml", "iris", client=api, settings=SETTINGS, now=T0 + 5, memory=memory)
    assert api.applied[first:] == []  # every child is as last applied
    assert api.reads == 2  # the ModelDeployment and its TrainingJob
    assert api.status == status
    assert controller.mdstatus.idle(api.status, 1)


def test_a_users_object_of_a_childs_name_is_left_untouched(api: FakeApi) -> None:
    """A Service of the user's named like the stable variant's: Degraded (NameClash) naming
    it; it is neither applied over, adopted nor deleted."""
    api.put(modeldeployment())
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    users = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "iris-stable", "namespace": "ml", "labels": {"team": "web"}},
        "spec": {"selector": {"app": "web"}},
    }
    api.put(copy.deepcopy(users))
    api.put(owned_route("u-other"))  # another ModelDeployment's, of the same name before
    reconcile(api, T0, cleanup=True)
    assert api.objects["Service", "iris-stable"] == users
    assert ("Service", "iris-stable") not in api.applied
    degraded = api.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "NameClash")
    assert "Service iris-stable exists" in degraded["message"]
    assert api.condition("Ready")["status"] == "False"
    assert not controller.mdstatus.idle(api.status, 1)  # the timer keeps checking
    assert ("Warning", "NameClash") in api.events  # type: ignore[attr-defined]
    del api.objects["Service", "iris-stable"]
    reconcile(api, T0 + 5, cleanup=True)
    assert api.condition("Degraded")["status"] == "False"
    assert ("HTTPRoute", "iris") not in api.deleted


@pytest.mark.parametrize("users", [True, False], ids=["replaced-by-a-users", "deleted"])
def test_a_child_gone_before_its_watch_event_is_never_applied_over(
    api: FakeApi, users: bool
) -> None:
    """The stable Deployment deleted (and maybe a user's made in its name) before the watch
    events tell: the next apply names the uid last seen, is refused, reads, and leaves a
    user's Deployment alone (NameClash) or makes a new one."""
    api.put(modeldeployment())
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    memory = Memory()
    controller.reconcile("ml", "iris", client=api, settings=SETTINGS, now=T0, memory=memory)
    ours = api.objects.pop(("Deployment", "iris-stable"))
    theirs = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "iris-stable", "namespace": "ml", "uid": "users"},
        "spec": {"replicas": 5},
    }
    if users:
        api.put(copy.deepcopy(theirs))
    md = api.objects["ModelDeployment", "iris"]
    md["spec"]["stable"]["replicas"] = 2
    md["metadata"]["generation"] = 2
    controller.reconcile("ml", "iris", client=api, settings=SETTINGS, now=T0 + 5, memory=memory)
    stored = api.objects["Deployment", "iris-stable"]
    if users:
        assert (stored["metadata"], stored["spec"]) == (theirs["metadata"], theirs["spec"])
        degraded = api.condition("Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "NameClash")
    else:
        assert stored["spec"]["replicas"] == 2
        assert stored["metadata"]["uid"] != ours["metadata"]["uid"]


def test_a_child_edited_by_someone_else_is_applied_again(api: FakeApi) -> None:
    """The watch event of a Deployment scaled by hand (a new generation the operator did not
    apply) makes the next pass apply it again, although its hash annotation is unchanged."""
    api.put(modeldeployment())
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    memory = Memory()
    controller.reconcile("ml", "iris", client=api, settings=SETTINGS, now=T0, memory=memory)
    edited = copy.deepcopy(api.objects["Deployment", "iris-stable"])
    edited["spec"]["replicas"] = 3
    edited["metadata"].update(generation=2, resourceVersion="150")
    assert memory.seen("MODIFIED", edited)
    rolled = copy.deepcopy(edited)
    rolled["metadata"]["resourceVersion"] = "151"
    rolled["status"] = {**rolled.get("status", {}), "replicas": 3}
    assert memory.seen("MODIFIED", rolled)  # its controller's status update: still edited
    applied = len(api.applied)
    controller.reconcile("ml", "iris", client=api, settings=SETTINGS, now=T0 + 5, memory=memory)
    assert api.applied[applied:] == [("Deployment", "iris-stable")]
    assert api.objects["Deployment", "iris-stable"]["spec"]["replicas"] == 1
    assert not memory.seen("MODIFIED", edited)  # an older event changes nothing


def annotate(api: FakeApi, value: str) -> None:
    api.objects["ModelDeployment", "iris"]["metadata"]["annotations"] = {"mlops.dev/command": value}


def test_commands_on_the_annotation_act_once_and_are_recorded(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.0))
    api.ready = True
    api.put(modeldeployment(**canary_spec()))
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(trainingjob("iris-v2", "Succeeded", V2))
    reconcile(api, T0)
    annotate(api, "pause/1")
    reconcile(api, T0 + 1)
    assert (api.status["phase"], api.status["control"]["paused"]) == ("Paused", True)
    assert api.status["control"]["command"] == "pause/1"
    reconcile(api, T0 + 40)  # the interval is over, but the rollout is held
    assert (api.status["phase"], api.status["canaryWeight"]) == ("Paused", 20)
    assert source.windows == []
    annotate(api, "promote/2")
    reconcile(api, T0 + 41)
    assert (api.status["phase"], api.status["canaryWeight"]) == ("Progressing", 50)
    annotate(api, "abort/3")
    reconcile(api, T0 + 42)
    assert api.status["phase"] == "RolledBack"
    assert api.condition("RolledBack")["reason"] == "Aborted"
    assert ("Deployment", "iris-canary") not in api.objects
    reconcile(api, T0 + 43)  # the same value again does nothing
    assert api.status["phase"] == "RolledBack"
    annotate(api, "retry/4")
    reconcile(api, T0 + 44)
    assert (api.status["phase"], api.status["canaryWeight"]) == ("Progressing", 20)
    annotate(api, "promote-full/5")
    reconcile(api, T0 + 45)
    assert api.status["phase"] == "Promoted"
    hand_off(api, T0 + 46)
    assert api.status["stable"]["digest"] == V2["digest"]
    outcomes = [(r["digest"], r["outcome"]) for r in api.status["history"]]
    assert outcomes == [(V2["digest"], "Aborted"), (V2["digest"], "Promoted")]
    assert api.status["history"][0]["replaces"] == V1["digest"]


def test_an_aborted_canarys_servers_stay_until_no_old_router_pod_is_left(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A router Pod in its preStop pause still answers its keep-alive clients with the old
    configuration: the canary's servers go only once it is gone (the real node's abort)."""
    with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.0))
    api.ready = True
    api.put(modeldeployment(**canary_spec()))
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(trainingjob("iris-v2", "Succeeded", V2))
    reconcile(api, T0)
    api.terminating["iris-router"] = 1  # the router rolled to the abort; its old Pod stops
    annotate(api, "abort/1")
    reconcile(api, T0 + 1)
    assert api.status["phase"] == "RolledBack"
    assert api.status["canaryWeight"] == 0
    assert ("Deployment", "iris-canary") in api.objects
    assert ("Service", "iris-canary") in api.objects
    reconcile(api, T0 + 2)  # the watch event of a status change: still terminating
    assert ("Deployment", "iris-canary") in api.objects
    del api.terminating["iris-router"]
    reconcile(api, T0 + 3)
    assert ("Deployment", "iris-canary") not in api.objects
    assert ("Service", "iris-canary") not in api.objects
    assert api.status["phase"] == "RolledBack"


def test_a_bad_command_is_reported_once(api: FakeApi) -> None:
    api.put(modeldeployment())
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    reconcile(api, T0)
    annotate(api, "rollback")
    reconcile(api, T0 + 1)
    assert "'rollback' is not one of" in api.status["control"]["message"]
    reconcile(api, T0 + 2)
    warnings = [r for t, r in api.events if t == "Warning"]  # type: ignore[attr-defined]
    assert warnings == ["CommandIgnored"]


def test_going_back_within_the_rollback_window_skips_the_steps(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v1 -> v2 promoted by its steps; then the canary names v1 again: within the window it is
    promoted in one pass, without an analysis, and history says so."""
    source = with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.0))
    api.ready = True
    api.put(modeldeployment(**canary_spec(), rollbackWindow={"promotions": 1}))
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(trainingjob("iris-v2", "Succeeded", V2))
    for now in (T0, T0 + 31, T0 + 62):
        reconcile(api, now)
    hand_off(api, T0 + 63)
    assert api.status["stable"]["digest"] == V2["digest"]
    judged = len(source.windows)
    api.objects["ModelDeployment", "iris"]["spec"]["canary"] = {
        "model": {"uri": V1["uri"], "digest": V1["digest"]}
    }
    reconcile(api, T0 + 70)
    assert api.status["phase"] == "Promoted"
    assert api.status["stable"]["digest"] == V1["digest"]
    assert api.condition("Promoted")["reason"] == "RollbackWindow"
    assert len(source.windows) == judged  # no analysis
    last = api.status["history"][-1]
    assert (last["digest"], last["outcome"], last["replaces"]) == (
        V1["digest"],
        "Promoted",
        V2["digest"],
    )
    assert ("Deployment", "iris-canary") not in api.objects


def test_sustained_drift_starts_exactly_one_run_of_the_stable_trainingjob(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[dict[str, Any]] = []

    def create(obj: Mapping[str, Any]) -> dict[str, Any]:
        created.append(copy.deepcopy(dict(obj)))
        api.put(copy.deepcopy(dict(obj)))
        return dict(obj)

    api.create = create  # type: ignore[method-assign]
    readings = iter([0.05, 0.4, 0.5, 0.6, 0.7, 0.8])
    monkeypatch.setattr(controller, "stable_drift", lambda *_a, **_k: next(readings))
    api.ready = True
    parent = trainingjob("iris-v1", "Succeeded", V1)
    parent["metadata"].update(uid="u-tj", labels={"app": "iris"})
    parent["spec"] = {"dataset": {"builtin": "iris"}}
    api.put(parent)
    api.put(
        modeldeployment(
            retraining={"maxPsi": 0.2, "intervals": 2, "interval": "10s", "cooldown": "1h"}
        )
    )
    for n in range(6):
        reconcile(api, T0 + 10 * n)
    runs = [c["metadata"]["name"] for c in created if c["kind"] == "TrainingJob"]
    assert runs == ["iris-v1-drift-20270115080020"]
    retraining = api.status["retraining"]
    assert (retraining["runs"], retraining["run"]) == (1, "iris-v1-drift-20270115080020")
    assert "cooldown" in retraining["message"]
    assert retraining["psi"] == 0.8
    assert ("Normal", "RetrainingStarted") in api.events  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "reason", "says"),
    [
        (
            kube.KubeError(
                "PATCH ...: 422",
                422,
                'Deployment.apps "iris-canary" is invalid: spec.template.spec.containers[0]'
                '.resources.requests[gpu]: Invalid value: "gpu": must be a standard resource',
            ),
            "ChildRejected",
            "requests[gpu]",
        ),
        (
            kube.MissingKind("...", 404, "apps/v1 Deployment is not served by the API server"),
            "MissingKind",
            "install that kind's CRDs",
        ),
    ],
)
def test_a_child_the_server_refuses_holds_the_rollout_degraded(
    api: FakeApi,
    monkeypatch: pytest.MonkeyPatch,
    error: kube.KubeError,
    reason: str,
    says: str,
) -> None:
    """A new spec whose canary the API server will not take: the rollout stays at its step
    with Degraded naming the child and the field, one Warning; fixed, it carries on."""
    with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.0))
    api.ready = True
    api.put(modeldeployment(**canary_spec()))
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(trainingjob("iris-v2", "Succeeded", V2))
    reconcile(api, T0)
    assert (api.status["phase"], api.status["canaryWeight"]) == ("Progressing", 20)
    applying = api.apply

    def refusing(obj: Mapping[str, Any]) -> dict[str, Any]:
        if (obj["kind"], obj["metadata"]["name"]) == ("Deployment", "iris-canary"):
            raise error
        return applying(obj)

    monkeypatch.setattr(api, "apply", refusing)
    api.objects["ModelDeployment", "iris"]["metadata"]["generation"] = 2
    api.objects["ModelDeployment", "iris"]["spec"]["canary"]["replicas"] = 2
    for tick in (31, 36, 41):
        reconcile(api, T0 + tick)
        assert (api.status["phase"], api.status["canaryWeight"]) == ("Progressing", 20)
    degraded = api.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", reason)
    assert says in degraded["message"]
    assert api.events.count(("Warning", reason)) == 1  # type: ignore[attr-defined]
    assert not controller.mdstatus.idle(api.status, 2)
    monkeypatch.setattr(api, "apply", applying)
    reconcile(api, T0 + 46)
    assert api.condition("Degraded")["status"] == "False"
    assert api.status["canaryWeight"] == 50


class Unreachable:
    """A metrics source that cannot be read (a Prometheus nobody answers at)."""

    def measure(self, window: Window) -> Reading:
        return Reading({}, None, "analysis.metrics.prometheusUrl: cannot query Prometheus at x")

    def begin(self, window: Window) -> None:
        return None


def test_metrics_that_cannot_be_read_hold_the_rollout_degraded(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        controller, "source_for", lambda _spec, _selector, _sources=None: Unreachable()
    )
    api.ready = True
    api.put(modeldeployment(**canary_spec()))
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    api.put(trainingjob("iris-v2", "Succeeded", V2))
    reconcile(api, T0)
    for tick in (31, 36, 62):
        reconcile(api, T0 + tick)
        assert (api.status["phase"], api.status["canaryWeight"]) == ("Progressing", 20)
        degraded = api.condition("Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "MetricsUnavailable")
        assert "analysis.metrics.prometheusUrl" in degraded["message"]
    assert api.events.count(("Warning", "MetricsUnavailable")) == 1  # type: ignore[attr-defined]
    with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.0))
    reconcile(api, T0 + 93)
    assert api.condition("Degraded")["status"] == "False"
    assert api.status["canaryWeight"] == 50
