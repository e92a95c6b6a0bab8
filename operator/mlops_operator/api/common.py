"""Types both resources share: identity, conditions, resources, model references."""

from __future__ import annotations

import re
from decimal import Decimal
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
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(duration: str) -> float:
    """Seconds of a duration that matches DURATION_PATTERN, e.g. 90s or 10m."""
    unit = "ms" if duration.endswith("ms") else duration[-1]
    return int(duration[: -len(unit)]) * DURATION_UNITS[unit]


DNS_1035_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
NAME_MAX = 63
CHILD_SUFFIX_MAX = len("-canary")
"""The longest suffix of a ModelDeployment's children (-stable, -canary, -router: objects.py)."""
STORE_URI_PATTERN = (
    r"^(file://.+|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?"
    r"|s3://[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?(/.*)?)$"
)
STORE_URI_FORMS = "file://<path>, pvc://<claim>/<path> or s3://<bucket>/<path>"
QUANTITY_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
_SUFFIXES = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{
        s: Decimal(10) ** e
        for s, e in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)
    },
}


def quantity(value: int | str) -> Decimal | None:
    """A Kubernetes quantity's value (as the API server's ``quantity()`` reads it); None when
    it is not one (``1GB``, ``2 Gi``)."""
    text = str(value)
    if not re.fullmatch(QUANTITY_PATTERN, text):
        return None
    number = re.match(r"[+-]?[0-9.]+", text)
    assert number is not None
    suffix = text[number.end() :]
    if suffix[:1] in ("e", "E"):
        return Decimal(number.group()) * Decimal(10) ** int(suffix[1:])
    return Decimal(number.group()) * _SUFFIXES.get(suffix, Decimal(1))


def name_rules(most: int, pattern: str, why: str) -> tuple[Rule, ...]:
    """Rules on a resource's metadata.name (on the root: a CRD cannot describe metadata)."""
    first = "a letter" if pattern == DNS_1035_PATTERN else "a letter or digit"
    return (
        Rule(
            f"size(self.metadata.name) <= {most}",
            f"metadata.name: at most {most} characters ({why})",
            lambda r: len(r.metadata.name) <= most,
        ),
        Rule(
            f"self.metadata.name.matches(r'{pattern}')",
            f"metadata.name: lowercase letters, digits and '-', no dots, starting with {first} "
            "and ending with a letter or digit, e.g. iris-v2",
            lambda r: re.fullmatch(pattern, r.metadata.name) is not None,
        ),
    )


def _quantities(resources: Resources) -> bool:
    values = [*(resources.requests or {}).values(), *(resources.limits or {}).values()]
    return all(quantity(v) is not None for v in values)


def _within_limits(resources: Resources) -> bool:
    requests, limits = resources.requests or {}, resources.limits or {}
    for key in requests.keys() & limits.keys():
        low, high = quantity(requests[key]), quantity(limits[key])
        if low is not None and high is not None and low > high:
            return False
    return True


def _is_quantity(cel: str) -> str:
    return f"isQuantity(string({cel}))"


Quantity = Annotated[
    int | Annotated[str, Field(max_length=64)],
    Field(description="A Kubernetes quantity, e.g. 500m, 1, 256Mi."),
]


class ObjectMeta(ApiModel):
    """The part of Kubernetes object metadata that the local runner and the trainer read."""

    name: Annotated[str, Field(min_length=1)]
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    model_config = ConfigDict(extra="ignore")


class Resources(ApiModel):
    """Compute resources of the Pods, as in a container's resources."""

    requests: Annotated[dict[str, Quantity] | None, Field(max_length=16)] = None
    """Minimum resources, e.g. {cpu: 500m, memory: 1Gi}."""
    limits: Annotated[dict[str, Quantity] | None, Field(max_length=16)] = None
    """Maximum resources, e.g. {cpu: 2, memory: 2Gi}."""

    rules = (
        Rule(
            f"(!has(self.requests) || self.requests.all(k, {_is_quantity('self.requests[k]')}))"
            f" && (!has(self.limits) || self.limits.all(k, {_is_quantity('self.limits[k]')}))",
            "resources: every request and limit is a quantity: a number with an optional "
            "suffix, e.g. 500m, 2, 256Mi, 1Gi (not 1GB: write 1Gi, or 1G for 10^9 bytes)",
            _quantities,
        ),
        Rule(
            "!has(self.requests) || !has(self.limits) || self.requests.all(k, "
            "!(k in self.limits) || "
            f"!{_is_quantity('self.requests[k]')} || !{_is_quantity('self.limits[k]')} || "
            "quantity(string(self.requests[k])).compareTo("
            "quantity(string(self.limits[k]))) <= 0)",
            "resources: a request must not exceed its limit (e.g. requests.memory 2Gi with "
            "limits.memory 1Gi)",
            _within_limits,
        ),
    )


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
    uri: Annotated[str | None, Field(min_length=1, max_length=1024)] = None
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
        Rule(
            f"!has(self.uri) || self.uri.matches(r'{STORE_URI_PATTERN}')",
            f"model.uri: an artifact directory, {STORE_URI_FORMS} (with a claim or bucket name)",
            lambda m: m.uri is None or re.fullmatch(STORE_URI_PATTERN, m.uri) is not None,
            field_path=".uri",
        ),
    )
