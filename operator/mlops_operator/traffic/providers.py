"""The traffic providers as a table, one row each. Pure.

A row says what the provider builds for a split, which kinds it creates (for the client's
paths, RBAC and the cleanup when a ModelDeployment moves to another provider), where the entry
Service sends clients, and when the canary's servers may go. A new provider is one module
and one row here, plus its value in the API's ``ProviderName`` (docs/contributing.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_operator.api.modeldeployment import ProviderName, Router
from mlops_operator.objects import CONFIG_MAP, DEPLOYMENT, DISRUPTION_BUDGET, Kind, router_name
from mlops_operator.traffic.gateway import http_route
from mlops_operator.traffic.istio import virtual_service
from mlops_operator.traffic.router import RouterOptions, router_objects
from mlops_operator.traffic.split import Split

Ref = tuple[str, str, str]
"""(apiVersion, kind, name) of a child."""
Applied = Mapping[tuple[str, str], Mapping[str, Any]]
"""The children as the API server stored them, by (kind, name)."""


@dataclass(frozen=True)
class Route:
    """What a provider is asked for: one ModelDeployment's split."""

    mdep: str
    namespace: str
    split: Split
    router: Router
    options: RouterOptions


@dataclass(frozen=True)
class Provider:
    name: ProviderName
    build: Callable[[Route], list[dict[str, Any]]]
    creates: Sequence[tuple[Kind, Callable[[str], str]]]
    """Each kind it creates, with the child's name for a ModelDeployment name."""
    entry_to_router: bool
    """The entry Service selects the router's Pods; otherwise the stable model servers (a
    mesh or gateway applies the split in front of them)."""
    hosts_in_url: bool
    """status.url names spec.router.hosts[0] when hosts are given."""
    settled: Callable[[str, Applied], bool] = lambda _mdep, _applied: True
    """No old route may still send to the canary, so its servers may go."""

    def refs(self, mdep: str) -> list[Ref]:
        return [(kind.api_version, kind.kind, name(mdep)) for kind, name in self.creates]


HTTP_ROUTE = Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
VIRTUAL_SERVICE = Kind("networking.istio.io/v1", "VirtualService", "virtualservices")


def _router_rolled_out(mdep: str, applied: Applied) -> bool:
    """Every nginx Pod runs the newest configuration (the Deployment rolled out)."""
    router = applied.get(("Deployment", router_name(mdep)))
    if router is None:
        return True
    spec, status = router.get("spec") or {}, router.get("status") or {}
    return bool(
        status.get("observedGeneration", 0) >= router["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == spec.get("replicas")
        and status.get("replicas", 0) == spec.get("replicas")
    )


def _same_name(mdep: str) -> str:
    return mdep


PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        Provider(
            "builtin",
            build=lambda r: router_objects(r.mdep, r.namespace, r.split, r.options),
            creates=(
                (DEPLOYMENT, router_name),
                (CONFIG_MAP, router_name),
                (DISRUPTION_BUDGET, router_name),
            ),
            entry_to_router=True,
            hosts_in_url=False,
            settled=_router_rolled_out,
        ),
        Provider(
            "gatewayAPI",
            build=lambda r: [http_route(r.mdep, r.namespace, r.split, r.router)],
            creates=((HTTP_ROUTE, _same_name),),
            entry_to_router=False,
            hosts_in_url=True,
        ),
        Provider(
            "istio",
            build=lambda r: [
                virtual_service(r.mdep, r.namespace, r.split, r.router, r.options.cluster_domain)
            ],
            creates=((VIRTUAL_SERVICE, _same_name),),
            entry_to_router=False,
            hosts_in_url=True,
        ),
    )
}

PROVIDER_KINDS: tuple[Kind, ...] = tuple(
    kind for provider in PROVIDERS.values() for kind, _ in provider.creates
)
