"""What every object the operator creates shares: names, labels, selectors, owner references
and security contexts. Pure; builders and traffic providers depend on this, not on each other.

Names are derived, never random: after a restart the operator finds (or, through 409
AlreadyExists, collides with) exactly the object it created before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlops_operator.api import API_VERSION

MANAGER = "mlops-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_TRAININGJOB = "mlops.dev/trainingjob"
"""On Jobs and Pods: the TrainingJob they train for."""
LABEL_SCHEDULED_BY = "mlops.dev/scheduled-by"
"""On runs of a scheduled TrainingJob: the parent's name."""
LABEL_MODELDEPLOYMENT = "mlops.dev/modeldeployment"
LABEL_VARIANT = "mlops.dev/variant"
ANNOTATION_SCHEDULED_TIME = "mlops.dev/scheduled-time"
"""On runs: the cron time the run was created for (RFC 3339)."""
ANNOTATION_DIGEST = "mlops.dev/model-digest"

JOB_NAME_MAX = 52
"""Like CronJob's names: leaves the Job controller room for Pod names within 63."""
NAME_MAX = 63

VariantName = Literal["stable", "canary"]
VARIANTS: tuple[VariantName, ...] = ("stable", "canary")
Component = Literal["model-server", "router", "entry", "route", "feedback", "network"]


@dataclass(frozen=True)
class Kind:
    """A kind of object the operator reads or writes, and the path segment it is served at."""

    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


TRAININGJOB = Kind(API_VERSION, "TrainingJob", "trainingjobs")
MODELDEPLOYMENT = Kind(API_VERSION, "ModelDeployment", "modeldeployments")
JOB = Kind("batch/v1", "Job", "jobs")
POD = Kind("v1", "Pod", "pods")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
SERVICE = Kind("v1", "Service", "services")
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
DISRUPTION_BUDGET = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
AUTOSCALER = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
NETWORK_POLICY = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
SECRET = Kind("v1", "Secret", "secrets")
"""Only created (the feedback and router tokens), never read, patched or listed: RBAC grants
create."""
KINDS = (
    *(TRAININGJOB, MODELDEPLOYMENT, JOB, POD),
    *(DEPLOYMENT, SERVICE, CONFIG_MAP, DISRUPTION_BUDGET, AUTOSCALER, NETWORK_POLICY, SECRET),
)
"""The kinds of the API and of the children every ModelDeployment has (providers add theirs)."""
LEASE = Kind("coordination.k8s.io/v1", "Lease", "leases")
"""The operator's own: the leader-election Lease in its namespace."""


def bounded(base: str, suffix: str, limit: int) -> str:
    """``<base>-<suffix>`` in at most ``limit`` characters; a hash keeps cut names distinct."""
    name = f"{base}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    keep = limit - len(suffix) - len(digest) - 2
    return f"{base[:keep].rstrip('-')}-{digest}-{suffix}"


def job_name(trainingjob: str) -> str:
    """The Job of a TrainingJob: ``<name>-train`` (shortened with a hash when too long)."""
    return bounded(trainingjob, "train", JOB_NAME_MAX)


def run_name(parent: str, stamp: str) -> str:
    """A run of a scheduled TrainingJob: ``<parent>-<YYYYMMDDHHMM>`` of its cron time."""
    return bounded(parent, stamp, NAME_MAX)


def variant_name(mdep: str, variant: VariantName) -> str:
    """A variant's Deployment, Service, PodDisruptionBudget and autoscaler."""
    return f"{mdep}-{variant}"


def router_name(mdep: str) -> str:
    return f"{mdep}-router"


def preview_name(mdep: str) -> str:
    """Blue-green: the Service in front of the candidate's servers before the switch."""
    return f"{mdep}-preview"


def feedback_secret_name(mdep: str) -> str:
    """The Secret holding the token that feedback to a ModelDeployment's servers needs."""
    return f"{mdep}-feedback"


FEEDBACK_TOKEN_KEY = "token"


def router_token_secret_name(mdep: str) -> str:
    """The Secret holding the token by which the builtin router proves a request came through
    it (traffic.proof): the model servers' MLOPS_ROUTER_TOKEN and the router's nginx snippet.
    Apart from ``<name>-feedback``, whose token feedback clients are given."""
    return f"{mdep}-router-token"


def labels(mdep: str, component: Component, variant: VariantName | None = None) -> dict[str, str]:
    """The labels of a ModelDeployment's children."""
    out = {
        "app.kubernetes.io/name": "mlops-model-server"
        if component == "model-server"
        else "mlops-router",
        "app.kubernetes.io/instance": mdep,
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: MANAGER,
        LABEL_MODELDEPLOYMENT: mdep,
    }
    if variant is not None:
        out[LABEL_VARIANT] = variant
    return out


def selector(mdep: str, component: Component, variant: VariantName | None = None) -> dict[str, str]:
    out = {LABEL_MODELDEPLOYMENT: mdep, LABEL_COMPONENT: component}
    if variant is not None:
        out[LABEL_VARIANT] = variant
    return out


def selector_string(match_labels: Mapping[str, str]) -> str:
    """A label selector in the API's query form: ``a=1,b=2``."""
    return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))


def owner_reference(kind: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Makes our resource ``kind`` the controller of a child: deleting it deletes the child."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_security_context(run_as: int) -> dict[str, Any]:
    """Non-root with ``run_as`` as user and group; fsGroup makes mounted claims writable."""
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as,
        "runAsGroup": run_as,
        "fsGroup": run_as,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """No privilege, no capability, no escalation, nothing written outside the volumes."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
