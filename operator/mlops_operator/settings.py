"""The operator's settings: environment variables with the MLOPS_ prefix, one field each.

Every field has a description; ``mlops operator --help`` and docs/trainingjob.md list them.
Lists are comma-separated in the environment (``MLOPS_NAMESPACES=team-a,team-b``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mlops_operator import defaults
from mlops_operator.api.modeldeployment import NotificationSink, ProviderName
from mlops_operator.lease import Timing

CommaList = Annotated[list[str], NoDecode]


class OperatorSettings(BaseSettings):
    """What the operator needs to know about its installation (set by the Helm chart)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore", frozen=True)

    image: str = Field(
        defaults.IMAGE,
        description="The operator's own image; training Pods run `mlops train` from it.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        defaults.IMAGE_PULL_POLICY, description="The pull policy of the training Pods' image."
    )
    model_store_claim: str = Field(
        "mlops-models",
        description="The PersistentVolumeClaim of the default model store (the chart creates it).",
    )
    model_store_uri: str = Field(
        "",
        description="The default model store for TrainingJobs without spec.output.uri; "
        "empty means pvc://<model_store_claim>.",
    )
    pvc_root: str = Field(
        defaults.PVC_ROOT,
        description="Where training and model-server Pods mount the claims of pvc:// URIs: "
        "<pvc_root>/<claim>.",
    )
    namespaces: CommaList = Field(
        default_factory=list,
        description="Namespaces to watch, comma-separated; empty means every namespace.",
    )
    default_router: ProviderName = Field(
        "builtin", description="The traffic provider of ModelDeployments that name none."
    )
    tracking_uri: str | None = Field(
        default=None,
        description="An MLflow tracking server for every TrainingJob whose spec names none "
        "(passed to training Pods as MLOPS_TRACKING_URI).",
    )
    extra_estimators: CommaList = Field(
        default_factory=list,
        description="Estimator import paths allowed on top of scikit-learn's, comma-separated "
        "(passed to training Pods as MLOPS_EXTRA_ESTIMATORS).",
    )
    training_service_account: str = Field(
        "",
        description="The ServiceAccount of training Pods; empty means the namespace's default. "
        "Training Pods never mount its token.",
    )
    schedule_interval_seconds: float = Field(
        30.0,
        gt=0,
        description="How often scheduled TrainingJobs are checked for a due run and their "
        "history trimmed (the cron schedule's resolution is a minute).",
    )
    serving_image: str = Field(
        "",
        description="The image of the model-server Pods (`mlops serve`); empty means `image`.",
    )
    router_image: str = Field(
        defaults.ROUTER_IMAGE,
        description="The nginx image of the builtin router (an unprivileged nginx; pin a digest "
        "with name@sha256:... in production).",
    )
    router_replicas: int = Field(
        defaults.ROUTER_REPLICAS, ge=1, description="nginx router Pods per ModelDeployment."
    )
    cluster_domain: str = Field(
        defaults.CLUSTER_DOMAIN, description="The cluster's DNS domain, for Service host names."
    )
    analysis_tick_seconds: float = Field(
        5.0,
        gt=0,
        description="How often ModelDeployments are reconciled by the timer; each one's "
        "analysis runs when its spec.traffic.interval is over (checked at this resolution).",
    )
    prometheus_selector: str = Field(
        defaults.PROMETHEUS_SELECTOR,
        description="The label matchers of a variant's series in Prometheus; {namespace}, "
        "{name} (the ModelDeployment, which is the served model name) and {variant}.",
    )
    metrics_targets: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="builtin metrics source, for tests and debugging: the /metrics URLs to "
        'scrape instead of the variant\'s Pods, as JSON {"<namespace>/<name>": {"stable": '
        '[url, ...], "canary": [url, ...]}}.',
    )
    notifications: list[NotificationSink] = Field(
        default_factory=list,
        description="Rollout notification sinks for every ModelDeployment, as a JSON list of "
        'ModelDeployment spec.notifications entries, e.g. [{"name": "team", "url": '
        '"https://hooks.slack.com/services/...", "format": "slack"}].',
    )
    metrics_from: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The NetworkPolicy peers that may reach the model servers' metrics port, "
        "as JSON: the operator's Pods and Prometheus (the chart sets it). Empty: any Pod.",
    )
    leader_election: bool = Field(
        False,
        description="Run as one of several replicas: act only while holding the Lease "
        "<leader_election_namespace>/<leader_election_lease> (the chart turns it on).",
    )
    leader_election_namespace: str = Field(
        "", description="The namespace of the leader-election Lease (the operator's own)."
    )
    leader_election_lease: str = Field(
        "mlops-operator", description="The name of the leader-election Lease."
    )
    lease_duration_seconds: float = Field(
        defaults.LEASE_DURATION,
        gt=0,
        description="Seconds a lease holds unrenewed: a standby takes over this long after "
        "the leader's last renewal.",
    )
    lease_renew_deadline_seconds: float = Field(
        defaults.LEASE_RENEW_DEADLINE,
        gt=0,
        description="Seconds the leader may fail to renew before it stops acting (less than "
        "the lease duration).",
    )
    lease_retry_seconds: float = Field(
        defaults.LEASE_RETRY, gt=0, description="Seconds between tries to take or renew the lease."
    )
    liveness_port: int = Field(
        8080, ge=0, le=65535, description="The port of the liveness probe (/healthz); 0: none."
    )
    metrics_port: int = Field(
        9090, ge=0, le=65535, description="The port of the Prometheus metrics (/metrics); 0: none."
    )

    @field_validator("metrics_from", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("namespaces", "extra_estimators", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _election(self) -> OperatorSettings:
        if self.leader_election and not self.leader_election_namespace:
            raise ValueError("leader_election needs leader_election_namespace")
        self.lease_timing()  # the durations' order
        return self

    def lease_timing(self) -> Timing:
        return Timing(
            self.lease_duration_seconds, self.lease_renew_deadline_seconds, self.lease_retry_seconds
        )

    @property
    def model_server_image(self) -> str:
        return self.serving_image or self.image

    @property
    def default_store_uri(self) -> str:
        """The model store of TrainingJobs that name none."""
        return self.model_store_uri or f"pvc://{self.model_store_claim}"


_current: list[OperatorSettings] = []


def get_settings() -> OperatorSettings:
    """The settings of this process: read once from the environment, unless set by use()."""
    if not _current:
        _current.append(OperatorSettings())
    return _current[0]


def use(settings: OperatorSettings) -> None:
    """Makes ``settings`` this process's settings (the CLI's options override the env)."""
    _current[:] = [settings]
