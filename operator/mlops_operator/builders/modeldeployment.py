"""Every child object a ModelDeployment needs, for the models served and the split. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_operator.api.modeldeployment import ModelDeploymentSpec, Variant
from mlops_operator.builders.network import (
    Peer,
    feedback_secret,
    network_policies,
    router_token_secret,
)
from mlops_operator.builders.serving import (
    ServingOptions,
    autoscaler,
    disruption_budget,
    entry_service,
    model_server_deployment,
    preview_service,
    variant_service,
)
from mlops_operator.canary.resolve import ServedModel
from mlops_operator.objects import (
    AUTOSCALER,
    DEPLOYMENT,
    DISRUPTION_BUDGET,
    NETWORK_POLICY,
    SERVICE,
    VariantName,
    preview_name,
    router_name,
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
    create: list[dict[str, Any]] = field(default_factory=list)
    """Created once if absent, never updated (the feedback and router tokens' Secrets)."""


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


def candidate(spec: ModelDeploymentSpec) -> Variant:
    """The canary variant as deployed: blue-green runs it at the stable variant's full size."""
    assert spec.canary is not None
    if spec.strategy != "blueGreen":
        return spec.canary
    return spec.canary.model_copy(
        update={"replicas": spec.stable.replicas, "autoscaling": spec.stable.autoscaling}
    )


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
    feedback_token: str,
    router_token: str,
    metrics_from: Sequence[Peer] = (),
    retired: bool = False,
) -> Children:
    """``canary`` is the canary model while it gets traffic, or while its servers still take
    feedback (``retired``, a promotion's hand-off), None otherwise."""
    apply: list[dict[str, Any]] = []
    delete: list[Ref] = []
    variants: list[tuple[VariantName, Variant, ServedModel]] = [("stable", spec.stable, stable)]
    if canary is not None and spec.canary is not None:
        variants.append(("canary", candidate(spec), canary))
        if spec.strategy == "blueGreen":
            apply.append(preview_service(name, namespace))
    for variant, variant_spec, model in variants:
        apply.append(variant_service(name, namespace, variant))
        shadow = variant == "canary" and spec.strategy == "shadow"
        apply.append(
            model_server_deployment(
                name,
                namespace,
                variant,
                spec=variant_spec,
                model=model,
                options=serving,
                reference=stable if shadow else None,
                tolerance=spec.analysis.agreement_tolerance,
            )
        )
        apply.append(disruption_budget(name, namespace, variant))
        hpa = autoscaler(name, namespace, variant, variant_spec)
        if hpa is not None:
            apply.append(hpa)
        else:
            delete.append((AUTOSCALER.api_version, AUTOSCALER.kind, variant_name(name, variant)))
    delete_canary = []
    if canary is None:
        preview = (SERVICE.api_version, SERVICE.kind, preview_name(name))
        delete_canary = [*_variant_refs(name, "canary"), preview]
    chosen = PROVIDERS[provider]
    apply += chosen.build(
        Route(name, namespace, split, spec.router, router, retired=retired and canary is not None)
    )
    apply.append(entry_service(name, namespace, to_router=chosen.entry_to_router))
    apply += network_policies(
        name, namespace, to_router=chosen.entry_to_router, metrics_from=metrics_from
    )
    if not chosen.entry_to_router:
        delete.append((NETWORK_POLICY.api_version, NETWORK_POLICY.kind, router_name(name)))
    for other in PROVIDERS.values():
        if other is not chosen:
            delete += other.refs(name)
    create = [
        feedback_secret(name, namespace, feedback_token),
        router_token_secret(name, namespace, router_token),
    ]
    return Children(apply=apply, delete=delete, delete_canary=delete_canary, create=create)


def service_url(
    name: str, namespace: str, spec: ModelDeploymentSpec, provider: str, options: RouterOptions
) -> str:
    """Where clients send predictions: the first routed host, else the entry Service."""
    hosts = spec.router.hosts or []
    if PROVIDERS[provider].hosts_in_url and hosts:
        return f"http://{hosts[0]}/v2/models/{name}"
    return f"http://{name}.{namespace}.svc.{options.cluster_domain}/v2/models/{name}"
