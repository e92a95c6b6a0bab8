"""The builtin provider's Kubernetes objects: the nginx ConfigMap, Deployment and PDB.

A configuration change changes the checksum annotation of the Pod template, so the
Deployment rolls the router (surge first, readiness-gated, a preStop pause while endpoints
update, graceful nginx shutdown): no request is dropped.
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
    selector,
    variant_name,
)
from mlops_operator.traffic.nginx import HEALTH_PATH, NginxConfig, checksum, render
from mlops_operator.traffic.split import Split

CHECKSUM_ANNOTATION = "mlops.dev/config-checksum"


@dataclass(frozen=True)
class RouterOptions:
    image: str = defaults.ROUTER_IMAGE
    replicas: int = defaults.ROUTER_REPLICAS
    cluster_domain: str = defaults.CLUSTER_DOMAIN
    run_as_user: int = defaults.ROUTER_RUN_AS


def nginx_conf(mdep: str, namespace: str, split: Split, options: RouterOptions) -> str:
    def host(variant: VariantName) -> str:
        service = variant_name(mdep, variant)
        return f"{service}.{namespace}.svc.{options.cluster_domain}:80"

    return render(
        NginxConfig(
            split=split,
            stable=[host("stable")],
            canary=[host("canary")] if split.canary else [],
            salt=f"{namespace}/{mdep}",
        )
    )


def router_objects(
    mdep: str, namespace: str, split: Split, options: RouterOptions
) -> list[dict[str, Any]]:
    """ConfigMap, Deployment and PodDisruptionBudget of the nginx router."""
    name = router_name(mdep)
    lab = labels(mdep, "router")
    conf = nginx_conf(mdep, namespace, split, options)
    meta = {"name": name, "namespace": namespace, "labels": lab}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"nginx.conf": conf},
    }
    probe = {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": 5}
    container = {
        "name": "nginx",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "initialDelaySeconds": 5, "periodSeconds": 10},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [
            {
                "name": "config",
                "mountPath": "/etc/nginx/nginx.conf",
                "subPath": "nginx.conf",
                "readOnly": True,
            },
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
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "minReadySeconds": 2,
            "template": {
                "metadata": {"labels": lab, "annotations": {CHECKSUM_ANNOTATION: checksum(conf)}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(options.run_as_user),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
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
