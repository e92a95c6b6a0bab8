"""The model servers of a ModelDeployment: per variant a Deployment running `mlops serve`, a
Service, a PodDisruptionBudget and optionally a HorizontalPodAutoscaler; one entry Service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mlops_operator import defaults
from mlops_operator.api.common import Resources
from mlops_operator.api.modeldeployment import Variant
from mlops_operator.canary.resolve import ServedModel
from mlops_operator.objects import (
    ANNOTATION_DIGEST,
    VariantName,
    container_security_context,
    labels,
    pod_security_context,
    selector,
    variant_name,
)
from model_server.store import PVC_ROOT_ENV

PORT = 8080
GRPC_PORT = 8081
"""The model server's Open Inference Protocol gRPC port (mlops serve --grpc-port)."""

DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "1Gi"},
}


@dataclass(frozen=True)
class ServingOptions:
    """Operator-wide choices for the model servers."""

    image: str = defaults.IMAGE
    image_pull_policy: str = defaults.IMAGE_PULL_POLICY
    run_as_user: int = defaults.RUN_AS
    pvc_root: str = defaults.PVC_ROOT
    extra_env: dict[str, str] = field(default_factory=dict)


def _meta(name: str, namespace: str, lab: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(lab)}


def _resources(resources: Resources | None) -> dict[str, Any]:
    if resources is None:
        return {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
    return {
        key: {name: str(value) for name, value in values.items()}
        for key, values in (("requests", resources.requests), ("limits", resources.limits))
        if values
    }


def _store_volume(uri: str, pvc_root: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The volume and mount a pvc:// model needs (none for other schemes)."""
    parts = urlsplit(uri)
    if parts.scheme != "pvc" or not parts.netloc:
        return [], []
    claim = parts.netloc
    volume = {
        "name": "model-store",
        "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
    }
    mount = {"name": "model-store", "mountPath": f"{pvc_root}/{claim}", "readOnly": True}
    return [volume], [mount]


def model_server_deployment(
    mdep: str,
    namespace: str,
    variant: VariantName,
    *,
    spec: Variant,
    model: ServedModel,
    options: ServingOptions,
) -> dict[str, Any]:
    """The Deployment of a variant's model servers, pinned to the model's digest."""
    name = variant_name(mdep, variant)
    lab = labels(mdep, "model-server", variant)
    volumes, mounts = _store_volume(model.uri, options.pvc_root)
    env = [
        {"name": "MLOPS_MODEL_URI", "value": model.uri},
        {"name": "MLOPS_MODEL_DIGEST", "value": model.digest},
        {"name": "MLOPS_MODEL_NAME", "value": mdep},
        {"name": "MLOPS_VARIANT", "value": variant},
        {"name": "MLOPS_PORT", "value": str(PORT)},
        {"name": "MLOPS_GRPC_PORT", "value": str(GRPC_PORT)},
        {"name": PVC_ROOT_ENV, "value": options.pvc_root},
        *({"name": k, "value": v} for k, v in sorted(options.extra_env.items())),
    ]
    container = {
        "name": "model-server",
        "image": options.image,
        "imagePullPolicy": options.image_pull_policy,
        "command": ["mlops", "serve"],
        "env": env,
        "ports": [
            {"name": "http", "containerPort": PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": _resources(spec.resources),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(mdep, "model-server", variant)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            "metadata": {
                "labels": lab,
                "annotations": {
                    ANNOTATION_DIGEST: model.digest,
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security_context(options.run_as_user),
                "terminationGracePeriodSeconds": 40,
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
            },
        },
    }
    if spec.autoscaling is None:
        deployment_spec["replicas"] = spec.replicas
    meta = _meta(name, namespace, lab)
    meta["annotations"] = {ANNOTATION_DIGEST: model.digest}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": deployment_spec,
    }


def variant_service(mdep: str, namespace: str, variant: VariantName) -> dict[str, Any]:
    """The Service of one variant's model servers (what routers send to)."""
    return _service(
        variant_name(mdep, variant),
        namespace,
        labels(mdep, "model-server", variant),
        selector(mdep, "model-server", variant),
        grpc=True,
    )


def entry_service(mdep: str, namespace: str, *, to_router: bool) -> dict[str, Any]:
    """The stable entry Service clients call: the nginx router's Pods, else the stable model
    servers (a mesh or gateway applies the split in front of them). gRPC only in the latter
    case: the nginx router splits HTTP/1.1 only."""
    target = selector(mdep, "router") if to_router else selector(mdep, "model-server", "stable")
    return _service(mdep, namespace, labels(mdep, "entry"), target, grpc=not to_router)


def _service(
    name: str, namespace: str, lab: dict[str, str], sel: dict[str, str], *, grpc: bool
) -> dict[str, Any]:
    ports = [
        {
            "name": "http",
            "port": 80,
            "targetPort": "http",
            "protocol": "TCP",
            "appProtocol": "http",
        }
    ]
    if grpc:
        ports.append(
            {
                "name": "grpc",
                "port": GRPC_PORT,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, lab),
        "spec": {
            "type": "ClusterIP",
            "selector": sel,
            "ports": ports,
        },
    }


def disruption_budget(mdep: str, namespace: str, variant: VariantName) -> dict[str, Any]:
    """At most one of the variant's model servers evicted at a time."""
    name = variant_name(mdep, variant)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, namespace, labels(mdep, "model-server", variant)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(mdep, "model-server", variant)},
        },
    }


def autoscaler(
    mdep: str, namespace: str, variant: VariantName, spec: Variant
) -> dict[str, Any] | None:
    """A CPU-based HorizontalPodAutoscaler, when the variant asks for autoscaling."""
    scaling = spec.autoscaling
    if scaling is None:
        return None
    name = variant_name(mdep, variant)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(name, namespace, labels(mdep, "model-server", variant)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }
