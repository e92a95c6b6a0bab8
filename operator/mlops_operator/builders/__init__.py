"""Manifest builders: pure functions from a spec to the Kubernetes objects it needs."""

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
