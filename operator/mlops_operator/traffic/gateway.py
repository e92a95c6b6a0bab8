"""The gatewayAPI provider: an HTTPRoute with weighted backendRefs and header matches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlops_operator.api.modeldeployment import Router
from mlops_operator.objects import labels, variant_name
from mlops_operator.traffic.split import Split

HTTPROUTE_API_VERSION = "gateway.networking.k8s.io/v1"


def _backend(mdep: str, variant: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": variant_name(mdep, variant), "port": 80}  # type: ignore[arg-type]
    if weight is not None:
        ref["weight"] = weight
    return ref


def http_route(mdep: str, namespace: str, split: Split, router: Router) -> dict[str, Any]:
    """Header matches force a variant; the catch-all rule splits by weight (and mirrors).

    Gateway API has no hash-based stickiness in its standard channel: an abTest through this
    provider is a weighted split (use the builtin provider for sticky assignment).
    """
    parents: Sequence[Any] = router.parent_refs or []
    parent_refs = []
    for parent in parents:
        ref: dict[str, Any] = {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": parent.name,
        }
        if parent.namespace:
            ref["namespace"] = parent.namespace
        if parent.section_name:
            ref["sectionName"] = parent.section_name
        parent_refs.append(ref)
    header = split.override_header
    rules: list[dict[str, Any]] = []
    forced = ["stable", "canary"] if split.canary else ["stable"]
    for variant in forced:
        rules.append(
            {
                "matches": [{"headers": [{"type": "Exact", "name": header, "value": variant}]}],
                "backendRefs": [_backend(mdep, variant)],
            }
        )
    main: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    if split.canary and not split.mirror:
        main["backendRefs"] = [
            _backend(mdep, "stable", split.stable_weight),
            _backend(mdep, "canary", split.canary_weight),
        ]
    else:
        main["backendRefs"] = [_backend(mdep, "stable", 100)]
    if split.mirror:
        main["filters"] = [
            {"type": "RequestMirror", "requestMirror": {"backendRef": _backend(mdep, "canary")}}
        ]
    rules.append(main)
    spec: dict[str, Any] = {"parentRefs": parent_refs, "rules": rules}
    if router.hosts:
        spec["hostnames"] = list(router.hosts)
    return {
        "apiVersion": HTTPROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {"name": mdep, "namespace": namespace, "labels": labels(mdep, "route")},
        "spec": spec,
    }
