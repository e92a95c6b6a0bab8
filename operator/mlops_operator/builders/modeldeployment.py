"""Every child object a ModelDeployment needs, for the models served and the split. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_operator.api.modeldeployment import ModelDeploymentSpec, Variant
from mlops_operator.builders.serving import (
    ServingOptions,
    autoscaler,
    disruption_budget,
    entry_service,
    model_server_deployment,
    variant_service,
)
from mlops_operator.canary.resolve import ServedModel
from mlops_operator.objects import (
    AUTOSCALER,
    DEPLOYMENT,
    DISRUPTION_BUDGET,
    SERVICE,
    VariantName,
    variant_name,
)
from mlops_operator.traffic.providers import PROVIDERS, Ref, Route
from mlops_operator.traffic.router import RouterOptions
from mlops_operator.traffic.split import Split, Sticky


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
    kinds = (AUTOSCALER, DISRUPTION_BUDGET, DEPLOYMENT, SERVICE)
    return [(kind.api_version, kind.kind, child) for kind in kinds]


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
    variants: list[tuple[VariantName, Variant, ServedModel]] = [("stable", spec.stable, stable)]
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
            delete.append((AUTOSCALER.api_version, AUTOSCALER.kind, variant_name(name, variant)))
    delete_canary = [] if canary is not None else _variant_refs(name, "canary")
    chosen = PROVIDERS[provider]
    apply += chosen.build(Route(name, namespace, split, spec.router, router))
    apply.append(entry_service(name, namespace, to_router=chosen.entry_to_router))
    for other in PROVIDERS.values():
        if other is not chosen:
            delete += other.refs(name)
    return Children(apply=apply, delete=delete, delete_canary=delete_canary)


def service_url(
    name: str, namespace: str, spec: ModelDeploymentSpec, provider: str, options: RouterOptions
) -> str:
    """Where clients send predictions: the first routed host, else the entry Service."""
    hosts = spec.router.hosts or []
    if PROVIDERS[provider].hosts_in_url and hosts:
        return f"http://{hosts[0]}/v2/models/{name}"
    return f"http://{name}.{namespace}.svc.{options.cluster_domain}/v2/models/{name}"
