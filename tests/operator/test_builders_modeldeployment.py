"""All children of a ModelDeployment, per provider, valid against the Kubernetes schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.builders.modeldeployment import children, split_for
from mlops_operator.builders.serving import ServingOptions
from mlops_operator.canary.resolve import ServedModel
from mlops_operator.traffic.router import RouterOptions

pytestmark = pytest.mark.unit
STABLE = ServedModel("pvc://mlops-models/ml/iris/v1", "sha256:" + "1" * 64, "iris-v1")
CANARY = ServedModel("pvc://mlops-models/ml/iris/v2", "sha256:" + "2" * 64, "iris-v2")
CORE_KINDS = {
    "Deployment",
    "Service",
    "ConfigMap",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
}


def spec(**extra: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "stable": {
                "model": {"trainingJob": "iris-v1"},
                "autoscaling": {"minReplicas": 2, "maxReplicas": 4},
            },
            "canary": {"model": {"trainingJob": "iris-v2"}},
            **extra,
        }
    )


def build(
    the_spec: ModelDeploymentSpec, provider: str, canary: ServedModel | None, weight: int = 20
) -> Any:
    return children(
        "iris",
        "ml",
        the_spec,
        provider=provider,
        stable=STABLE,
        canary=canary,
        split=split_for(the_spec, canary is not None, weight),
        serving=ServingOptions(),
        router=RouterOptions(),
    )


@pytest.mark.parametrize("provider", ["builtin", "gatewayAPI", "istio"])
def test_children_are_valid(provider: str) -> None:
    the_spec = spec(router={"provider": provider, "parentRefs": [{"name": "gw"}]})
    wanted = build(the_spec, provider, CANARY)
    for obj in wanted.apply:
        if obj["kind"] in CORE_KINDS:
            kubernetes_validate.validate(obj, "1.34", strict=True)
    names = {(o["kind"], o["metadata"]["name"]) for o in wanted.apply}
    assert {
        ("Deployment", "iris-stable"),
        ("Deployment", "iris-canary"),
        ("Service", "iris-stable"),
        ("Service", "iris-canary"),
        ("Service", "iris"),
        ("PodDisruptionBudget", "iris-stable"),
        ("PodDisruptionBudget", "iris-canary"),
        ("HorizontalPodAutoscaler", "iris-stable"),
    } <= names
    route_kind = {"builtin": "ConfigMap", "gatewayAPI": "HTTPRoute", "istio": "VirtualService"}[
        provider
    ]
    assert any(kind == route_kind for kind, _ in names)
    assert wanted.delete_canary == []
    kinds_deleted = {kind for _, kind, _ in wanted.delete}
    assert ("HTTPRoute" in kinds_deleted) == (provider != "gatewayAPI")
    assert ("VirtualService" in kinds_deleted) == (provider != "istio")
    # Services come before the routes that name them.
    order = [o["kind"] for o in wanted.apply]
    assert order.index("Service") < order.index(route_kind)


def test_without_an_active_canary_its_children_go() -> None:
    wanted = build(spec(), "builtin", None)
    names = {(o["kind"], o["metadata"]["name"]) for o in wanted.apply}
    assert ("Deployment", "iris-canary") not in names
    assert ("apps/v1", "Deployment", "iris-canary") in wanted.delete_canary
    conf = next(o for o in wanted.apply if o["kind"] == "ConfigMap")["data"]["nginx.conf"]
    assert "mlops_canary" not in conf


def test_split_follows_the_strategy() -> None:
    ab = spec(strategy="abTest", abTest={"cookie": "session", "canaryPercent": 30})
    split = split_for(ab, True, 30)
    assert split.sticky is not None
    assert (split.sticky.kind, split.sticky.name) == ("cookie", "session")
    shadow = split_for(spec(strategy="shadow"), True, 0)
    assert shadow.mirror
    assert shadow.canary_weight == 0
    assert split_for(spec(), False, 50).canary is False
