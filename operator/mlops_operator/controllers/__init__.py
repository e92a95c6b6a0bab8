"""The kopf handlers. Importing this package registers them with kopf's default registry."""

from mlops_operator.controllers import trainingjob

__all__ = ["trainingjob"]
