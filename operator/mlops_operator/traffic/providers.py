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
from mlops_operator.traffic.router import CHECKSUM_ANNOTATION, RouterOptions, router_objects
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
    retired: bool = False
    """The canary's servers take feedback only (no prediction): a promotion's hand-off. Only
    the builtin router can send feedback to the server that remembers its id."""


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
    settled: Callable[[str, Applied, Applied, Sequence[Mapping[str, Any]]], bool] = (
        lambda _mdep, _desired, _applied, _pods: True
    )
    """Every router runs the newest route and no older one is left (given the children as
    desired, as stored, and the router's Pods): no old route may still send to the canary, so
    its servers may go."""
    has_pods: bool = False
    """Its routers are Pods of ours, which :attr:`settled` needs listed."""
    proves_source: bool = False
    """It sends the model servers the proof that a request came through it (traffic.proof),
    so the analysis counts only those; a gateway or a mesh cannot set the header from our
    Secret, and every request counts."""

    def refs(self, mdep: str) -> list[Ref]:
        return [(kind.api_version, kind.kind, name(mdep)) for kind, name in self.creates]


HTTP_ROUTE = Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
VIRTUAL_SERVICE = Kind("networking.istio.io/v1", "VirtualService", "virtualservices")


def _router_rolled_out(
    mdep: str, desired: Applied, applied: Applied, pods: Sequence[Mapping[str, Any]]
) -> bool:
    """Every nginx Pod runs the newest configuration (the Deployment rolled out) and no Pod
    of an older one is still there: a terminating router Pod serves its keep-alive clients
    for its whole preStop pause, with its old configuration (the real node's blue-green abort:
    a 502). ``status.terminatingReplicas`` (Kubernetes 1.35 and later) counts them too, and
    wakes the operator when the last one goes."""
    router = applied.get(("Deployment", router_name(mdep)))
    if router is None:
        return True
    spec, status = router.get("spec") or {}, router.get("status") or {}
    rolled_out = bool(
        status.get("observedGeneration", 0) >= router["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == spec.get("replicas")
        and status.get("replicas", 0) == spec.get("replicas")
        and not status.get("terminatingReplicas")
    )
    wanted_spec = (desired.get(("Deployment", router_name(mdep))) or {}).get("spec") or {}
    template = ((wanted_spec.get("template") or {}).get("metadata") or {}).get("annotations")
    wanted = (template or {}).get(CHECKSUM_ANNOTATION)
    for pod in pods:
        meta = pod.get("metadata") or {}
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            continue
        if (
            meta.get("deletionTimestamp")
            or (meta.get("annotations") or {}).get(CHECKSUM_ANNOTATION) != wanted
        ):
            return False
    return rolled_out


def _same_name(mdep: str) -> str:
    return mdep


PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        Provider(
            "builtin",
            build=lambda r: router_objects(
                r.mdep, r.namespace, r.split, r.options, retired=r.retired
            ),
            creates=(
                (DEPLOYMENT, router_name),
                (CONFIG_MAP, router_name),
                (DISRUPTION_BUDGET, router_name),
            ),
            entry_to_router=True,
            hosts_in_url=False,
            settled=_router_rolled_out,
            has_pods=True,
            proves_source=True,
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
