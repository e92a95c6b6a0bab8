"""The API (group mlops.dev, version v1alpha1) as pydantic models: the single source of truth."""

from mlops_operator.api.common import API_VERSION, GROUP, VERSION
from mlops_operator.api.modeldeployment import ModelDeployment, ModelDeploymentSpec
from mlops_operator.api.trainingjob import TrainingJob, TrainingJobSpec

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "TrainingJob",
    "TrainingJobSpec",
]
