"""The builtin provider's Kubernetes objects: the nginx ConfigMap, Deployment and PDB.

A configuration change changes the checksum annotation of the Pod template, so the
Deployment rolls the router (surge first, readiness-gated, a preStop pause while endpoints
update, graceful nginx shutdown): no request is dropped. The router's proof to the model
servers (traffic.proof) comes from the Secret ``<name>-router-token``, mounted read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_operator import defaults
from mlops_operator.objects import (
    VariantName,
    container_security_context,
    labels,
    pod_security_context,
    router_name,
    router_token_secret_name,
    selector,
    variant_name,
)
from mlops_operator.traffic.nginx import (
    HEALTH_PATH,
    KEEPALIVE_TIME_SECONDS,
    READY_PATH,
    NginxConfig,
    checksum,
    render,
)
from mlops_operator.traffic.proof import SNIPPET_DIR, SNIPPET_KEY
from mlops_operator.traffic.split import Split

CHECKSUM_ANNOTATION = "mlops.dev/config-checksum"
ROUTER_PORT = 8080
"""nginx's listen port in the router Pods (the entry Service's target)."""


@dataclass(frozen=True)
class RouterOptions:
    image: str = defaults.ROUTER_IMAGE
    replicas: int = defaults.ROUTER_REPLICAS
    cluster_domain: str = defaults.CLUSTER_DOMAIN
    run_as_user: int = defaults.ROUTER_RUN_AS


def nginx_conf(
    mdep: str, namespace: str, split: Split, options: RouterOptions, *, retired: bool = False
) -> str:
    """``retired``: the canary's servers get no prediction but still take feedback (a
    promotion's hand-off, mlops_operator.canary.handoff)."""

    def host(variant: VariantName) -> str:
        service = variant_name(mdep, variant)
        return f"{service}.{namespace}.svc.{options.cluster_domain}:80"

    return render(
        NginxConfig(
            split=split,
            stable=[host("stable")],
            canary=[host("canary")] if split.canary else [],
            retired=[host("canary")] if retired and not split.canary else [],
            salt=f"{namespace}/{mdep}",
            listen=str(ROUTER_PORT),
            proof=f"{SNIPPET_DIR}/{SNIPPET_KEY}",
        )
    )


def router_objects(
    mdep: str, namespace: str, split: Split, options: RouterOptions, *, retired: bool = False
) -> list[dict[str, Any]]:
    """ConfigMap, Deployment and PodDisruptionBudget of the nginx router."""
    name = router_name(mdep)
    lab = labels(mdep, "router")
    conf = nginx_conf(mdep, namespace, split, options, retired=retired)
    meta = {"name": name, "namespace": namespace, "labels": lab}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"nginx.conf": conf},
    }
    probe = {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": 5}
    ready = {"httpGet": {"path": READY_PATH, "port": "http"}, "periodSeconds": 1}
    container = {
        "name": "nginx",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"}],
        "readinessProbe": ready,
        "livenessProbe": {**probe, "initialDelaySeconds": 5, "periodSeconds": 10},
        # Out of the endpoints first; then steady clients leave within keepalive_time (each
        # gets Connection: close), before nginx's graceful stop closes what is left idle.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(KEEPALIVE_TIME_SECONDS + 5)]}}},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [
            {
                "name": "config",
                "mountPath": "/etc/nginx/nginx.conf",
                "subPath": "nginx.conf",
                "readOnly": True,
            },
            {"name": "proof", "mountPath": SNIPPET_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": selector(mdep, "router")},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "100%"},
            },
            "minReadySeconds": 2,
            "template": {
                "metadata": {"labels": lab, "annotations": {CHECKSUM_ANNOTATION: checksum(conf)}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(options.run_as_user),
                    "terminationGracePeriodSeconds": KEEPALIVE_TIME_SECONDS + 35,
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
                        {
                            "name": "proof",
                            "secret": {
                                "secretName": router_token_secret_name(mdep),
                                "items": [{"key": SNIPPET_KEY, "path": SNIPPET_KEY}],
                                "defaultMode": 0o440,
                            },
                        },
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(mdep, "router")}},
    }
    return [config_map, deployment, budget]
