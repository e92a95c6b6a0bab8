"""Model-server builders: valid against the Kubernetes 1.34 schemas, hardened, pinned."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from mlops_operator.api.modeldeployment import Variant
from mlops_operator.builders.serving import (
    ServingOptions,
    autoscaler,
    disruption_budget,
    entry_service,
    model_server_deployment,
    variant_service,
)
from mlops_operator.canary.resolve import ServedModel
from mlops_operator.traffic.providers import PROVIDERS

pytestmark = pytest.mark.unit
DIGEST = "sha256:" + "ab" * 32
MODEL = ServedModel(uri="pvc://mlops-models/default/iris/v1", digest=DIGEST, name="iris")


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.34", strict=True)


def variant(**extra: Any) -> Variant:
    return Variant.model_validate({"model": {"trainingJob": "iris"}, **extra})


def deployment(spec: Variant, which: str = "stable") -> dict[str, Any]:
    return model_server_deployment(
        "iris",
        "ml",
        which,  # type: ignore[arg-type]
        spec=spec,
        model=MODEL,
        options=ServingOptions(image="mlops:test"),
    )


def env(obj: dict[str, Any]) -> dict[str, str]:
    container = obj["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


@pytest.mark.parametrize("which", ["stable", "canary"])
def test_deployment_is_valid_and_pinned(which: str) -> None:
    obj = deployment(variant(replicas=3), which)
    validate(obj)
    assert obj["metadata"]["name"] == f"iris-{which}"
    assert obj["spec"]["replicas"] == 3
    assert (
        env(obj).items()
        >= {
            "MLOPS_MODEL_URI": MODEL.uri,
            "MLOPS_MODEL_DIGEST": DIGEST,
            "MLOPS_VARIANT": which,
            "MLOPS_MODEL_NAME": "iris",
        }.items()
    )
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mlops", "serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_deployment_is_hardened() -> None:
    pod = deployment(variant())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = pod["containers"][0]["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert "/tmp" in mounts
    assert mounts["/var/lib/mlops/pvc/mlops-models"]["readOnly"] is True
    assert pod["automountServiceAccountToken"] is False


def test_resources_from_the_spec() -> None:
    spec = variant(resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2}})
    obj = deployment(spec)
    validate(obj)
    assert obj["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2"},
    }


def test_s3_model_needs_no_volume() -> None:
    obj = model_server_deployment(
        "iris",
        "ml",
        "stable",
        spec=variant(),
        model=ServedModel(uri="s3://bucket/iris/v1", digest=DIGEST),
        options=ServingOptions(),
    )
    validate(obj)
    assert [v["name"] for v in obj["spec"]["template"]["spec"]["volumes"]] == ["tmp"]


def test_autoscaling_leaves_replicas_to_the_hpa() -> None:
    spec = variant(autoscaling={"minReplicas": 2, "maxReplicas": 6, "targetCpuUtilization": 70})
    obj = deployment(spec)
    validate(obj)
    assert "replicas" not in obj["spec"]
    hpa = autoscaler("iris", "ml", "stable", spec)
    assert hpa is not None
    validate(hpa)
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] == 6
    assert hpa["spec"]["scaleTargetRef"]["name"] == "iris-stable"
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert autoscaler("iris", "ml", "stable", variant()) is None


def entry(provider: str) -> dict[str, Any]:
    return entry_service("iris", "ml", to_router=PROVIDERS[provider].entry_to_router)


def test_services_and_budget() -> None:
    for obj in (
        variant_service("iris", "ml", "canary"),
        entry("builtin"),
        entry("istio"),
        disruption_budget("iris", "ml", "stable"),
    ):
        validate(obj)
    assert variant_service("iris", "ml", "canary")["spec"]["selector"]["mlops.dev/variant"] == (
        "canary"
    )
    assert entry("builtin")["spec"]["selector"]["app.kubernetes.io/component"] == "router"
    assert entry("gatewayAPI")["spec"]["selector"]["mlops.dev/variant"] == "stable"


def test_explanations_are_off_by_default_and_switched_on_per_variant() -> None:
    assert "MLOPS_EXPLAIN" not in env(deployment(variant()))
    assert "MLOPS_EXPLAIN" not in env(deployment(variant(explain={"enabled": False})))
    obj = deployment(variant(explain={"enabled": True, "samples": 500, "maxRows": 20}), "canary")
    validate(obj)
    assert (
        env(obj).items()
        >= {
            "MLOPS_EXPLAIN": "true",
            "MLOPS_EXPLAIN_SAMPLES": "500",
            "MLOPS_EXPLAIN_MAX_ROWS": "20",
        }.items()
    )


def test_explain_env_names_are_model_server_settings() -> None:
    from model_server.settings import ServerSettings

    names = variant(explain={"enabled": True}).explain.server_env()  # type: ignore[union-attr]
    fields = {f"MLOPS_{name.upper()}" for name in ServerSettings.model_fields}
    assert set(names) <= fields
