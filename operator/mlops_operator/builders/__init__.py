"""Pure manifest builders: spec -> Kubernetes objects as plain dicts (no API calls)."""

from mlops_operator.builders.serving import (
    ServedModel,
    ServingOptions,
    autoscaler,
    disruption_budget,
    entry_service,
    labels,
    model_server_deployment,
    variant_name,
    variant_service,
)

__all__ = [
    "ServedModel",
    "ServingOptions",
    "autoscaler",
    "disruption_budget",
    "entry_service",
    "labels",
    "model_server_deployment",
    "variant_name",
    "variant_service",
]
