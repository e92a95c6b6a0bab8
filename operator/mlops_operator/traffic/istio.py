"""The istio provider: a VirtualService with weighted routes, header matches and mirroring.

Each variant has its own Service, so no DestinationRule subsets are needed.
"""

from __future__ import annotations

from typing import Any

from mlops_operator.api.modeldeployment import Router
from mlops_operator.objects import labels, variant_name
from mlops_operator.traffic.split import Split

VIRTUALSERVICE_API_VERSION = "networking.istio.io/v1"


def _destination(mdep: str, namespace: str, variant: str, domain: str) -> dict[str, Any]:
    host = f"{variant_name(mdep, variant)}.{namespace}.svc.{domain}"  # type: ignore[arg-type]
    return {"host": host, "port": {"number": 80}}


def virtual_service(
    mdep: str, namespace: str, split: Split, router: Router, domain: str = "cluster.local"
) -> dict[str, Any]:
    """Routes for the entry Service (mesh) and the hosts/gateways of spec.router.

    Istio weights do not hash a user key: an abTest through this provider is a weighted split
    (use the builtin provider for sticky assignment).
    """
    hosts = [f"{mdep}.{namespace}.svc.{domain}", *(router.hosts or [])]
    header = split.override_header
    http: list[dict[str, Any]] = []
    forced = ["stable", "canary"] if split.canary else ["stable"]
    for variant in forced:
        http.append(
            {
                "name": f"force-{variant}",
                "match": [{"headers": {header: {"exact": variant}}}],
                "route": [{"destination": _destination(mdep, namespace, variant, domain)}],
            }
        )
    main: dict[str, Any] = {"name": "split"}
    if split.canary and not split.mirror:
        main["route"] = [
            {
                "destination": _destination(mdep, namespace, "stable", domain),
                "weight": split.stable_weight,
            },
            {
                "destination": _destination(mdep, namespace, "canary", domain),
                "weight": split.canary_weight,
            },
        ]
    else:
        main["route"] = [
            {"destination": _destination(mdep, namespace, "stable", domain), "weight": 100}
        ]
    if split.mirror:
        main["mirror"] = _destination(mdep, namespace, "canary", domain)
        main["mirrorPercentage"] = {"value": 100.0}
    http.append(main)
    spec: dict[str, Any] = {"hosts": hosts, "http": http}
    if router.gateways:
        spec["gateways"] = [*router.gateways, "mesh"]
    return {
        "apiVersion": VIRTUALSERVICE_API_VERSION,
        "kind": "VirtualService",
        "metadata": {"name": mdep, "namespace": namespace, "labels": labels(mdep, "route")},
        "spec": spec,
    }
