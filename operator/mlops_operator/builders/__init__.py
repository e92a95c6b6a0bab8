"""Manifest builders: pure functions from a spec to the Kubernetes objects it needs."""

from mlops_operator.builders.serving import (
    ServingOptions,
    autoscaler,
    disruption_budget,
    entry_service,
    model_server_deployment,
    variant_service,
)

__all__ = [
    "ServingOptions",
    "autoscaler",
    "disruption_budget",
    "entry_service",
    "model_server_deployment",
    "variant_service",
]
