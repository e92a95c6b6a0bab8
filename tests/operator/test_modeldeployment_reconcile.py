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
from mlops_operator.controllers.errors import handling
from mlops_operator.metrics_sources import Reading, Window
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
        self.ready = False
        self.conflicts = 0

    def put(self, obj: dict[str, Any]) -> None:
        self.objects[obj["kind"], obj["metadata"]["name"]] = obj

    def get(self, kind_: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind_.kind, name))
        return copy.deepcopy(found) if found else None

    def list_(self, kind_: Kind, namespace: str, selector: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, _), o in self.objects.items() if k == kind_.kind]

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(obj))
        stored["metadata"]["generation"] = 1
        if stored["kind"] == "Deployment":
            replicas = stored["spec"].get("replicas", 1)
            stored["status"] = {
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas if self.ready else 0,
            }
        self.put(stored)
        return copy.deepcopy(stored)

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
    fake = FakeApi()
    fake.events = events  # type: ignore[attr-defined]
    return fake


def reconcile(api: FakeApi, now: float, *, cleanup: bool = False) -> str | None:
    return controller.reconcile(
        "ml", "iris", cleanup=cleanup, client=api, settings=SETTINGS, now=now
    )


def canary_spec() -> dict[str, Any]:
    return {"canary": {"model": {"trainingJob": "iris-v2"}}}


def with_numbers(monkeypatch: pytest.MonkeyPatch, canary: VariantMetrics) -> Numbers:
    source = Numbers(canary)
    monkeypatch.setattr(controller, "source_for", lambda _spec, _selector: source)
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


def test_serves_the_stable_model_and_owns_its_children(api: FakeApi) -> None:
    api.put(modeldeployment())
    api.put(trainingjob("iris-v1", "Succeeded", V1))
    reconcile(api, T0, cleanup=True)
    assert api.status["phase"] == "Degraded"  # no model server ready yet
    assert api.condition("Ready")["reason"] == "ModelServersNotReady"
    deployment = api.objects["Deployment", "iris-stable"]
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    env = {
        e["name"]: e["value"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MLOPS_MODEL_DIGEST"] == V1["digest"]
    assert ("Deployment", "iris-router") in api.objects
    assert ("HTTPRoute", "iris") in api.deleted  # other providers' routes are cleaned up
    api.ready = True
    reconcile(api, T0 + 5)
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
    assert api.status["stable"]["digest"] == V2["digest"]
    assert api.status["promoted"]["replaces"] == V1["digest"]
    assert ("Deployment", "iris-canary") not in api.objects
    assert api.condition("Progressing")["reason"] == "Promoted"
    assert (api.condition("Promoted")["status"], api.condition("RolledBack")["status"]) == (
        "True",
        "False",
    )
    assert ("Normal", "Promoted") in api.events  # type: ignore[attr-defined]


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
