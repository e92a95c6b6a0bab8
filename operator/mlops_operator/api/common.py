"""Types both resources share: identity, conditions, resources, model references."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from mlops_operator.api.base import ApiModel, Rule

GROUP = "mlops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "mlops"

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DURATION_PATTERN = r"^[0-9]+(ms|s|m|h)$"

Quantity = Annotated[
    int | str,
    Field(description="A Kubernetes quantity, e.g. 500m, 1, 256Mi."),
]


class ObjectMeta(ApiModel):
    """The part of Kubernetes object metadata that the local runner and the trainer read."""

    name: Annotated[str, Field(max_length=63, pattern=DNS_LABEL_PATTERN)]
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    model_config = ConfigDict(extra="ignore")


class Resources(ApiModel):
    """Compute resources of the Pods, as in a container's resources."""

    requests: dict[str, Quantity] | None = None
    """Minimum resources, e.g. {cpu: 500m, memory: 1Gi}."""
    limits: dict[str, Quantity] | None = None
    """Maximum resources, e.g. {cpu: 2, memory: 2Gi}."""


class Condition(ApiModel):
    """A condition as the Kubernetes API conventions define it."""

    type: str
    """The condition's type, e.g. Ready, Progressing, Degraded, Succeeded."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str = ""
    """One CamelCase word a program can act on, e.g. QualityGateFailed."""
    message: str = ""
    """What a person needs to know, e.g. which metric missed by how much."""
    last_transition_time: str | None = None
    """When the status last changed (RFC 3339)."""
    observed_generation: int | None = None
    """The spec generation this condition was computed from."""


class ModelStatus(ApiModel):
    """A published model version."""

    uri: str
    """Where the artifact lives, e.g. pvc://mlops-models/default/iris/20261122-101500."""
    digest: str
    """The artifact's sha256 digest; model servers refuse anything else."""
    version: str
    """The version, unique per TrainingJob."""


class LabelSelector(ApiModel):
    """Selects TrainingJobs by their labels."""

    match_labels: Annotated[dict[str, str], Field(min_length=1)]
    """Labels a TrainingJob must carry, e.g. {app: fraud}."""


class ModelRef(ApiModel):
    """Which model a variant serves: exactly one of trainingJob, uri (with digest), selector."""

    training_job: Annotated[str | None, Field(max_length=253)] = None
    """The name of a TrainingJob in the same namespace; its status.model is served."""
    uri: Annotated[str | None, Field(min_length=1)] = None
    """An artifact directory in the model store (file://, pvc://, s3://); needs digest."""
    digest: Annotated[str | None, Field(pattern=DIGEST_PATTERN)] = None
    """The artifact's digest, sha256:<64 hex>; required with uri."""
    selector: LabelSelector | None = None
    """Continuous delivery: follow the newest Succeeded TrainingJob with these labels."""

    rules = (
        Rule(
            "[has(self.trainingJob), has(self.uri), has(self.selector)].filter(x, x).size() == 1",
            "model: set exactly one of trainingJob, uri or selector",
            lambda m: [m.training_job, m.uri, m.selector].count(None) == 2,
        ),
        Rule(
            "has(self.uri) == has(self.digest)",
            "model.digest: a model uri needs its digest (sha256:<64 hex>), "
            "and a digest belongs with a uri",
            lambda m: (m.uri is None) == (m.digest is None),
            field_path=".digest",
        ),
    )
