"""Traffic providers: the nginx renderer, the router objects, HTTPRoute and VirtualService."""

from __future__ import annotations

import kubernetes_validate
import pytest

from mlops_operator.api.modeldeployment import Router
from mlops_operator.traffic import Split, Sticky
from mlops_operator.traffic.gateway import http_route
from mlops_operator.traffic.istio import virtual_service
from mlops_operator.traffic.nginx import NginxConfig, checksum, render
from mlops_operator.traffic.providers import PROVIDERS
from mlops_operator.traffic.router import CHECKSUM_ANNOTATION, RouterOptions, router_objects

pytestmark = pytest.mark.unit


def conf(split: Split) -> str:
    return render(
        NginxConfig(split=split, stable=["s:80"], canary=["c:80"] if split.canary else [])
    )


def test_weighted_split() -> None:
    text = conf(Split(canary_weight=10, canary=True))
    assert 'split_clients "$request_id" $mlops_split {' in text
    assert "10% canary;" in text
    assert "* stable;" in text
    assert "proxy_pass http://mlops_$mlops_variant;" in text
    assert "mirror" not in text


@pytest.mark.parametrize(("weight", "target"), [(0, "stable"), (100, "canary")])
def test_all_or_nothing_needs_no_split(weight: int, target: str) -> None:
    text = conf(Split(canary_weight=weight, canary=True))
    assert "split_clients" not in text
    assert f"default {target};" in text


def test_sticky_header_and_cookie() -> None:
    header = conf(Split(canary_weight=30, canary=True, sticky=Sticky("header", "X-User-Id")))
    assert "map $http_x_user_id $mlops_key {" in header
    assert 'split_clients "$mlops_key" $mlops_split {' in header
    cookie = conf(Split(canary_weight=30, canary=True, sticky=Sticky("cookie", "session")))
    assert "map $cookie_session $mlops_key {" in cookie


def test_override_header_only_names_existing_variants() -> None:
    assert "canary canary;" in conf(Split(canary_weight=5, canary=True))
    alone = conf(Split())
    assert "canary" not in alone.replace("mlops_canary", "")
    assert "upstream mlops_canary" not in alone


def test_shadow_mirrors_to_the_canary() -> None:
    text = conf(Split(canary=True, mirror=True))
    assert "mirror /_mlops_mirror;" in text
    assert "mirror_request_body on;" in text
    assert "proxy_pass http://mlops_canary$request_uri;" in text
    assert "default stable;" in text


def test_invalid_splits() -> None:
    with pytest.raises(ValueError, match="percentage"):
        Split(canary_weight=101, canary=True)
    with pytest.raises(ValueError, match="needs a canary"):
        Split(canary_weight=10)
    with pytest.raises(ValueError, match="unexpected characters"):
        conf(Split(canary=True, sticky=Sticky("header", "x;evil")))


def test_router_objects_are_valid_and_roll_on_change() -> None:
    options = RouterOptions()
    first = router_objects("iris", "ml", Split(canary_weight=10, canary=True), options)
    second = router_objects("iris", "ml", Split(canary_weight=50, canary=True), options)
    for obj in first:
        kubernetes_validate.validate(obj, "1.34", strict=True)
    config_map, deployment, _ = first
    text = config_map["data"]["nginx.conf"]
    assert "server iris-stable.ml.svc.cluster.local:80;" in text
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations[CHECKSUM_ANNOTATION] == checksum(text)
    assert annotations != second[1]["spec"]["template"]["metadata"]["annotations"]
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {
        "maxUnavailable": 0,
        "maxSurge": "100%",
    }  # a new set at once: a hand-off rolls it 3 times
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_http_route() -> None:
    router = Router.model_validate(
        {
            "provider": "gatewayAPI",
            "parentRefs": [{"name": "web", "namespace": "gw", "sectionName": "http"}],
            "hosts": ["iris.example.com"],
        }
    )
    route = http_route("iris", "ml", Split(canary_weight=25, canary=True), router)
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "web",
            "namespace": "gw",
            "sectionName": "http",
        }
    ]
    assert route["spec"]["hostnames"] == ["iris.example.com"]
    rules = route["spec"]["rules"]
    assert rules[1]["matches"][0]["headers"][0] == {
        "type": "Exact",
        "name": "x-mlops-variant",
        "value": "canary",
    }
    assert rules[-1]["backendRefs"] == [
        {"name": "iris-stable", "port": 80, "weight": 75},
        {"name": "iris-canary", "port": 80, "weight": 25},
    ]
    shadow = http_route("iris", "ml", Split(canary=True, mirror=True), router)
    assert shadow["spec"]["rules"][-1]["filters"][0]["requestMirror"]["backendRef"] == {
        "name": "iris-canary",
        "port": 80,
    }


def test_virtual_service() -> None:
    router = Router.model_validate(
        {"provider": "istio", "gateways": ["istio-system/public"], "hosts": ["iris.example.com"]}
    )
    vs = virtual_service("iris", "ml", Split(canary_weight=40, canary=True), router)
    spec = vs["spec"]
    assert spec["hosts"] == ["iris.ml.svc.cluster.local", "iris.example.com"]
    assert spec["gateways"] == ["istio-system/public", "mesh"]
    assert [r["weight"] for r in spec["http"][-1]["route"]] == [60, 40]
    assert spec["http"][1]["match"] == [{"headers": {"x-mlops-variant": {"exact": "canary"}}}]
    shadow = virtual_service("iris", "ml", Split(canary=True, mirror=True), router)
    assert shadow["spec"]["http"][-1]["mirror"]["host"] == "iris-canary.ml.svc.cluster.local"
    assert shadow["spec"]["http"][-1]["mirrorPercentage"] == {"value": 100.0}


def test_the_router_proof_is_included_wherever_nginx_proxies() -> None:
    from mlops_operator.traffic.proof import snippet

    token = "k" * 43
    assert snippet(token) == f'proxy_set_header X-Mlops-Router "{token}";\n'
    for bad in ("short", 'a" ; evil "' * 3, "k" * 20 + ";" + "k" * 20, "k" * 20 + "\n"):
        with pytest.raises(ValueError, match="router token"):
            snippet(bad)
    mirrored = render(
        NginxConfig(
            split=Split(canary=True, mirror=True),
            stable=["s:80"],
            canary=["c:80"],
            proof="/etc/nginx/mlops-router/proxy-headers.conf",
        )
    )
    # the server's level, and the mirror's location (which sets headers of its own, so it
    # inherits none)
    assert mirrored.count("include /etc/nginx/mlops-router/proxy-headers.conf;") == 2
    assert token not in mirrored
    assert "X-Mlops-Router" not in mirrored


def test_without_a_proof_a_clients_copy_of_the_header_is_dropped() -> None:
    text = conf(Split(canary=True, mirror=True))
    assert text.count('proxy_set_header X-Mlops-Router "";') == 2
    assert "include" not in text


def _router(replicas: int = 1, **status: int) -> dict[str, object]:
    stored = {
        "metadata": {"name": "iris-router", "generation": 2},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas},
    }
    stored["status"].update(status)  # type: ignore[attr-defined]
    return stored


@pytest.mark.parametrize(
    ("router", "settled"),
    [
        (_router(), True),
        (_router(terminatingReplicas=0), True),
        (_router(updatedReplicas=0), False),  # the new Pods not there yet
        (_router(replicas=2, updatedReplicas=1), False),
        (_router(observedGeneration=1), False),  # the controller has not seen the change
        # rolled out, but the old Pod still answers its keep-alive clients (preStop)
        (_router(terminatingReplicas=1), False),
    ],
)
def test_a_canarys_servers_go_only_once_no_router_pod_may_still_send_to_them(
    router: dict[str, object], settled: bool
) -> None:
    builtin = PROVIDERS["builtin"]
    assert builtin.settled("iris", {}, {("Deployment", "iris-router"): router}, []) is settled
    assert builtin.settled("iris", {}, {}, []) is True  # no router: nothing sends to the canary
    assert PROVIDERS["gatewayAPI"].settled("iris", {}, {}, []) is True
