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
    FEEDBACK_TOKEN_KEY,
    VariantName,
    container_security_context,
    feedback_secret_name,
    labels,
    pod_security_context,
    preview_name,
    router_token_secret_name,
    selector,
    variant_name,
)
from mlops_operator.traffic.proof import TOKEN_KEY as ROUTER_TOKEN_KEY
from model_server.store import PVC_ROOT_ENV

PORT = 8080
GRPC_PORT = 8081
"""The model server's Open Inference Protocol gRPC port (mlops serve --grpc-port)."""
METRICS_PORT = 9090
"""/metrics alone (mlops serve --metrics-port): a NetworkPolicy lets only the operator and
Prometheus reach it, apart from the inference ports."""

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


def _store_volumes(
    uris: list[str], pvc_root: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The volumes and mounts pvc:// models need (none for other schemes), one per claim."""
    claims: list[str] = []
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme == "pvc" and parts.netloc and parts.netloc not in claims:
            claims.append(parts.netloc)
    names = [("model-store" if i == 0 else f"model-store-{i}") for i in range(len(claims))]
    volumes = [
        {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        for name, claim in zip(names, claims, strict=True)
    ]
    mounts = [
        {"name": name, "mountPath": f"{pvc_root}/{claim}", "readOnly": True}
        for name, claim in zip(names, claims, strict=True)
    ]
    return volumes, mounts


def explain_env(spec: Variant) -> dict[str, str]:
    return spec.explain.server_env() if spec.explain is not None else {}


def agreement_env(reference: ServedModel | None, tolerance: float | None) -> dict[str, str]:
    """strategy shadow: the shadow's servers compare each prediction with the stable model's
    (model_server.agreement)."""
    if reference is None:
        return {}
    env = {
        "MLOPS_REFERENCE_MODEL_URI": reference.uri,
        "MLOPS_REFERENCE_MODEL_DIGEST": reference.digest,
    }
    if tolerance is not None:
        env["MLOPS_AGREEMENT_TOLERANCE"] = repr(float(tolerance))
    return env


def model_server_deployment(
    mdep: str,
    namespace: str,
    variant: VariantName,
    *,
    spec: Variant,
    model: ServedModel,
    options: ServingOptions,
    reference: ServedModel | None = None,
    tolerance: float | None = None,
) -> dict[str, Any]:
    """The Deployment of a variant's model servers, pinned to the model's digest; with a
    ``reference`` (the shadow's: the stable model) they measure their agreement with it."""
    name = variant_name(mdep, variant)
    lab = labels(mdep, "model-server", variant)
    uris = [model.uri] + ([reference.uri] if reference is not None else [])
    volumes, mounts = _store_volumes(uris, options.pvc_root)
    env = [
        {"name": "MLOPS_MODEL_URI", "value": model.uri},
        {"name": "MLOPS_MODEL_DIGEST", "value": model.digest},
        {"name": "MLOPS_MODEL_NAME", "value": mdep},
        {"name": "MLOPS_VARIANT", "value": variant},
        {"name": "MLOPS_PORT", "value": str(PORT)},
        {"name": "MLOPS_GRPC_PORT", "value": str(GRPC_PORT)},
        {"name": "MLOPS_METRICS_PORT", "value": str(METRICS_PORT)},
        {
            "name": "MLOPS_FEEDBACK_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": feedback_secret_name(mdep), "key": FEEDBACK_TOKEN_KEY}
            },
        },
        {
            "name": "MLOPS_ROUTER_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": router_token_secret_name(mdep), "key": ROUTER_TOKEN_KEY}
            },
        },
        {"name": PVC_ROOT_ENV, "value": options.pvc_root},
        *({"name": k, "value": v} for k, v in sorted(explain_env(spec).items())),
        *({"name": k, "value": v} for k, v in sorted(agreement_env(reference, tolerance).items())),
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
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
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
                    "prometheus.io/port": str(METRICS_PORT),
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


def preview_service(mdep: str, namespace: str) -> dict[str, Any]:
    """Blue-green's preview: the candidate's (canary variant's) model servers, by their own
    name, for tests and people to call before the switch."""
    return _service(
        preview_name(mdep),
        namespace,
        labels(mdep, "model-server", "canary"),
        selector(mdep, "model-server", "canary"),
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
