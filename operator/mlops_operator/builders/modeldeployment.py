"""Every child object a ModelDeployment needs, for the models served and the split. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.builders.serving import (
    ServedModel,
    ServingOptions,
    VariantName,
    autoscaler,
    disruption_budget,
    entry_service,
    model_server_deployment,
    variant_name,
    variant_service,
)
from mlops_operator.traffic.gateway import HTTPROUTE_API_VERSION, http_route
from mlops_operator.traffic.istio import VIRTUALSERVICE_API_VERSION, virtual_service
from mlops_operator.traffic.router import RouterOptions, router_name, router_objects
from mlops_operator.traffic.split import Split, Sticky

Ref = tuple[str, str, str]
"""(apiVersion, kind, name) of a child."""


@dataclass(frozen=True)
class Children:
    apply: list[dict[str, Any]]
    """Desired objects, in a safe order: Services before the routes that name them."""
    delete: list[Ref]
    """Children that must not exist (now or any longer)."""
    delete_canary: list[Ref]
    """The canary's children, once no route sends traffic to it any more."""


def split_for(spec: ModelDeploymentSpec, canary_active: bool, weight: int) -> Split:
    if not canary_active:
        return Split()
    sticky = None
    if spec.strategy == "abTest" and spec.ab_test is not None:
        if spec.ab_test.header:
            sticky = Sticky("header", spec.ab_test.header)
        elif spec.ab_test.cookie:
            sticky = Sticky("cookie", spec.ab_test.cookie)
    shadow = spec.strategy == "shadow"
    return Split(canary_weight=0 if shadow else weight, canary=True, sticky=sticky, mirror=shadow)


def _variant_refs(name: str, variant: VariantName) -> list[Ref]:
    child = variant_name(name, variant)
    return [
        ("autoscaling/v2", "HorizontalPodAutoscaler", child),
        ("policy/v1", "PodDisruptionBudget", child),
        ("apps/v1", "Deployment", child),
        ("v1", "Service", child),
    ]


def children(
    name: str,
    namespace: str,
    spec: ModelDeploymentSpec,
    *,
    provider: str,
    stable: ServedModel,
    canary: ServedModel | None,
    split: Split,
    serving: ServingOptions,
    router: RouterOptions,
) -> Children:
    """``canary`` is the canary model while it gets traffic (None otherwise)."""
    apply: list[dict[str, Any]] = []
    delete: list[Ref] = []
    variants: list[tuple[VariantName, Any, ServedModel]] = [("stable", spec.stable, stable)]
    if canary is not None and spec.canary is not None:
        variants.append(("canary", spec.canary, canary))
    for variant, variant_spec, model in variants:
        apply.append(variant_service(name, namespace, variant))
        apply.append(
            model_server_deployment(
                name, namespace, variant, spec=variant_spec, model=model, options=serving
            )
        )
        apply.append(disruption_budget(name, namespace, variant))
        hpa = autoscaler(name, namespace, variant, variant_spec)
        if hpa is not None:
            apply.append(hpa)
        else:
            delete.append(
                ("autoscaling/v2", "HorizontalPodAutoscaler", variant_name(name, variant))
            )
    delete_canary = [] if canary is not None else _variant_refs(name, "canary")
    routes: list[dict[str, Any]] = []
    if provider == "builtin":
        routes = router_objects(name, namespace, split, router)
    elif provider == "gatewayAPI":
        routes = [http_route(name, namespace, split, spec.router)]
    elif provider == "istio":
        routes = [virtual_service(name, namespace, split, spec.router, router.cluster_domain)]
    apply += routes
    apply.append(entry_service(name, namespace, provider))
    if provider != "builtin":
        router_child = router_name(name)
        delete += [
            ("apps/v1", "Deployment", router_child),
            ("v1", "ConfigMap", router_child),
            ("policy/v1", "PodDisruptionBudget", router_child),
        ]
    if provider != "gatewayAPI":
        delete.append((HTTPROUTE_API_VERSION, "HTTPRoute", name))
    if provider != "istio":
        delete.append((VIRTUALSERVICE_API_VERSION, "VirtualService", name))
    return Children(apply=apply, delete=delete, delete_canary=delete_canary)
