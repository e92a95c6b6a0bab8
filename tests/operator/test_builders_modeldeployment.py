"""All children of a ModelDeployment, per provider, valid against the Kubernetes schemas."""

from __future__ import annotations

import base64
import json
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
    "NetworkPolicy",
    "Secret",
}
OPERATOR = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlops-system"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "mlops-operator"}},
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
        feedback_token="t0ken",
        router_token="r" * 32,
        metrics_from=[OPERATOR],
    )


@pytest.mark.parametrize("provider", ["builtin", "gatewayAPI", "istio"])
def test_children_are_valid(provider: str) -> None:
    the_spec = spec(router={"provider": provider, "parentRefs": [{"name": "gw"}]})
    wanted = build(the_spec, provider, CANARY)
    for obj in [*wanted.apply, *wanted.create]:
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


@pytest.mark.parametrize("provider", ["builtin", "gatewayAPI", "istio"])
@pytest.mark.parametrize(("weight", "stable_share"), [(0, 100), (100, 0)])
def test_blue_green_preview_and_switch_with_every_provider(
    provider: str, weight: int, stable_share: int
) -> None:
    """Before the switch the candidate runs at full size behind its preview Service and gets
    no live traffic (but the override header reaches it); after it, all of it."""
    the_spec = spec(
        strategy="blueGreen", router={"provider": provider, "parentRefs": [{"name": "gw"}]}
    )
    wanted = build(the_spec, provider, CANARY, weight)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in wanted.apply}
    preview = by_name["Service", "iris-preview"]
    kubernetes_validate.validate(preview, "1.34", strict=True)
    assert preview["spec"]["selector"] == by_name["Service", "iris-canary"]["spec"]["selector"]
    assert ("HorizontalPodAutoscaler", "iris-canary") in by_name  # the stable's full size
    split = split_for(the_spec, True, weight)
    assert (split.stable_weight, split.canary_weight) == (stable_share, 100 - stable_share)
    text = str(
        [o for o in wanted.apply if o["kind"] in ("ConfigMap", "HTTPRoute", "VirtualService")]
    )
    assert "x-mlops-variant" in text or "mlops_variant" in text


def test_blue_green_preview_goes_with_the_canary() -> None:
    wanted = build(spec(strategy="blueGreen"), "builtin", None)
    assert ("v1", "Service", "iris-preview") in wanted.delete_canary


def policy(wanted: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        o for o in wanted.apply if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == name
    )
    return found


def test_only_the_router_reaches_inference_and_only_the_operator_the_metrics() -> None:
    wanted = build(spec(), "builtin", CANARY)
    servers = policy(wanted, "iris-model-servers")["spec"]
    assert servers["podSelector"]["matchLabels"] == {
        "mlops.dev/modeldeployment": "iris",
        "app.kubernetes.io/component": "model-server",
    }
    assert servers["policyTypes"] == ["Ingress"]
    inference, metrics = servers["ingress"]
    assert [p["port"] for p in inference["ports"]] == [8080, 8081]
    assert inference["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "mlops.dev/modeldeployment": "iris",
                    "app.kubernetes.io/component": "router",
                }
            }
        }
    ]
    assert [p["port"] for p in metrics["ports"]] == [9090]
    assert metrics["from"] == [OPERATOR]
    router = policy(wanted, "iris-router")["spec"]
    assert router["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    # the model servers serve /metrics on that port alone, and want the feedback token
    server = next(
        o
        for o in wanted.apply
        if o["metadata"]["name"] == "iris-canary" and o["kind"] == "Deployment"
    )
    env = {e["name"]: e for e in server["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLOPS_METRICS_PORT"]["value"] == "9090"
    assert env["MLOPS_FEEDBACK_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "iris-feedback", "key": "token"}
    }


def test_with_a_gateway_the_inference_ports_stay_open_and_the_router_policy_goes() -> None:
    the_spec = spec(router={"provider": "gatewayAPI", "parentRefs": [{"name": "gw"}]})
    wanted = build(the_spec, "gatewayAPI", CANARY)
    inference, metrics = policy(wanted, "iris-model-servers")["spec"]["ingress"]
    assert "from" not in inference
    assert metrics["from"] == [OPERATOR]
    assert ("networking.k8s.io/v1", "NetworkPolicy", "iris-router") in wanted.delete


def test_the_feedback_and_router_token_secrets_are_only_created() -> None:
    wanted = build(spec(), "builtin", CANARY)
    assert [o["kind"] for o in wanted.create] == ["Secret", "Secret"]
    feedback, router = wanted.create
    assert feedback["metadata"]["name"] == "iris-feedback"
    assert base64.b64decode(feedback["data"]["token"]) == b"t0ken"
    assert router["metadata"]["name"] == "iris-router-token"
    assert base64.b64decode(router["data"]["token"]) == b"r" * 32
    snippet = base64.b64decode(router["data"]["proxy-headers.conf"]).decode()
    assert snippet == f'proxy_set_header X-Mlops-Router "{"r" * 32}";\n'
    assert all(o["kind"] != "Secret" for o in wanted.apply)


@pytest.mark.parametrize("provider", ["builtin", "gatewayAPI", "istio"])
def test_the_router_token_is_in_no_config_map_and_reaches_the_servers_from_its_secret(
    provider: str,
) -> None:
    wanted = build(spec(), provider, CANARY)
    for obj in wanted.apply:
        assert "r" * 32 not in json.dumps(obj), f"{obj['kind']} {obj['metadata']['name']}"
    servers = [
        o
        for o in wanted.apply
        if o["kind"] == "Deployment" and o["metadata"]["name"] in ("iris-stable", "iris-canary")
    ]
    assert len(servers) == 2
    for server in servers:
        env = {e["name"]: e for e in server["spec"]["template"]["spec"]["containers"][0]["env"]}
        ref = env["MLOPS_ROUTER_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "iris-router-token", "key": "token"}


def test_the_router_pod_includes_the_proof_from_the_secret_read_only() -> None:
    wanted = build(spec(), "builtin", CANARY)
    conf = next(o for o in wanted.apply if o["kind"] == "ConfigMap")["data"]["nginx.conf"]
    assert conf.count("include /etc/nginx/mlops-router/proxy-headers.conf;") == 1
    router = next(
        o
        for o in wanted.apply
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "iris-router"
    )
    pod = router["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "proof")
    assert volume["secret"]["secretName"] == "iris-router-token"
    assert volume["secret"]["items"] == [
        {"key": "proxy-headers.conf", "path": "proxy-headers.conf"}
    ]
    container = pod["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "proof")
    assert mount == {"name": "proof", "mountPath": "/etc/nginx/mlops-router", "readOnly": True}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


def test_router_pods_outlast_the_client_connections_they_hold() -> None:
    from mlops_operator.traffic.nginx import KEEPALIVE_TIME_SECONDS

    wanted = build(spec(), "builtin", CANARY)
    conf = next(o for o in wanted.apply if o["kind"] == "ConfigMap")["data"]["nginx.conf"]
    assert f"keepalive_time {KEEPALIVE_TIME_SECONDS}s;" in conf
    router = next(
        o
        for o in wanted.apply
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "iris-router"
    )
    pod = router["spec"]["template"]["spec"]
    pause = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pause > KEEPALIVE_TIME_SECONDS
    assert pod["terminationGracePeriodSeconds"] > pause + 10
