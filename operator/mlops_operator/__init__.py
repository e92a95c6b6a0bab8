"""mlops-operator: the control plane (API models, CRDs, builders, controllers, the `mlops` CLI)."""

__version__ = "0.1.0"
