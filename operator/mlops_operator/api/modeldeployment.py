"""The ModelDeployment resource: serve a model and roll new ones out safely."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mlops_operator.api.base import ApiModel, Rule, defaulted
from mlops_operator.api.common import (
    DURATION_PATTERN,
    Condition,
    ModelRef,
    ObjectMeta,
    Resources,
)

Percent = Annotated[int, Field(ge=0, le=100)]
ProviderName = Literal["builtin", "gatewayAPI", "istio"]
"""The traffic providers: one row each in mlops_operator.traffic.providers.PROVIDERS."""


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler for the variant's model servers."""

    min_replicas: Annotated[int, Field(ge=1)] = 1
    """The fewest model servers."""
    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    """The most model servers."""
    target_cpu_utilization: Annotated[int, Field(ge=1, le=100)] = 80
    """Average CPU utilization, in percent of the request, to scale at."""

    rules = (
        Rule(
            "self.minReplicas <= self.maxReplicas",
            "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
            lambda a: a.min_replicas <= a.max_replicas,
        ),
    )


class Variant(ApiModel):
    """A model and the model servers that serve it."""

    model: ModelRef
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Model servers to run (without autoscaling)."""
    resources: Resources | None = None
    autoscaling: Autoscaling | None = None


class Traffic(ApiModel):
    """How traffic moves to the canary: a fixed weight, or steps at an interval."""

    canary_weight: Percent | None = None
    """A manual split: the percentage of requests the canary gets, held as it is."""
    steps: Annotated[list[Annotated[int, Field(ge=1, le=100)]] | None, Field(max_length=20)] = None
    """Canary weights to go through, strictly ascending, e.g. [10, 25, 50]; after the last
    healthy step the canary is promoted."""
    interval: Annotated[str, Field(pattern=DURATION_PATTERN)] = "1m"
    """How long each step lasts and how often the analysis runs, e.g. 30s, 2m."""
    pause: bool = False
    """Hold the rollout where it is."""

    rules = (
        Rule(
            "!(has(self.canaryWeight) && has(self.steps))",
            "traffic: set canaryWeight (a manual split) or steps (a progressive rollout), not both",
            lambda t: t.canary_weight is None or t.steps is None,
        ),
        Rule(
            "!has(self.steps) || (self.steps.isSorted() && "
            "self.steps.all(w, self.steps.filter(x, x == w).size() == 1))",
            "traffic.steps must be strictly ascending, e.g. [10, 25, 50]",
            lambda t: (
                t.steps is None or all(a < b for a, b in zip(t.steps, t.steps[1:], strict=False))
            ),
            field_path=".steps",
        ),
    )


class MetricsSource(ApiModel):
    """Where the analysis reads the variants' metrics."""

    source: Literal["builtin", "prometheus"] = "builtin"
    """builtin scrapes the model servers' /metrics; prometheus queries a Prometheus server."""
    prometheus_url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    """The Prometheus server, e.g. http://prometheus.monitoring:9090."""

    rules = (
        Rule(
            "!has(self.source) || self.source != 'prometheus' || has(self.prometheusUrl)",
            "analysis.metrics.prometheusUrl is required when source is prometheus",
            lambda m: m.source != "prometheus" or m.prometheus_url is not None,
            field_path=".prometheusUrl",
        ),
    )


class Analysis(ApiModel):
    """What a healthy canary looks like, judged every interval."""

    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    """The largest fraction of 5xx answers allowed."""
    max_latency_p99_ms: Annotated[float | None, Field(gt=0)] = None
    """The largest 99th-percentile latency allowed, in milliseconds."""
    min_accuracy: Annotated[float | None, Field(ge=0, le=1)] = None
    """The lowest online accuracy allowed (from feedback), when feedback is sent."""
    max_error_rate_increase: Annotated[float | None, Field(ge=0, le=1)] = None
    """Compared with the stable variant over the same interval: the canary's error rate may
    exceed the stable's by at most this much, e.g. 0.01."""
    max_latency_p99_increase_ms: Annotated[float | None, Field(ge=0)] = None
    """Compared with the stable variant: the canary's p99 may exceed the stable's by at most
    this many milliseconds."""
    max_accuracy_drop: Annotated[float | None, Field(ge=0, le=1)] = None
    """Compared with the stable variant: the canary's online accuracy may be at most this
    much lower than the stable's, e.g. 0.02 (both need feedback in the interval)."""
    min_requests: Annotated[int, Field(ge=0)] = 20
    """Fewer requests than this in an interval decide nothing: the step is held."""
    failure_limit: Annotated[int, Field(ge=1, le=100)] = 2
    """Failed analyses (in a row) that roll the canary back."""
    metrics: MetricsSource = defaulted(MetricsSource)


class ABTest(ApiModel):
    """A fixed split with sticky assignment: the same key always gets the same variant."""

    header: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9-]+$")] = None
    """The request header whose value is hashed, e.g. x-user-id."""
    cookie: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]+$")] = None
    """The cookie whose value is hashed, e.g. session."""
    canary_percent: Annotated[int, Field(ge=1, le=99)] = 50
    """The share of keys assigned to the canary."""
    promote: bool = False
    """Set to true to promote the canary once you have seen enough."""

    rules = (
        Rule(
            "has(self.header) != has(self.cookie)",
            "abTest: set exactly one of header or cookie to hash on",
            lambda a: (a.header is None) != (a.cookie is None),
        ),
    )


class ParentRef(ApiModel):
    """A Gateway API parent (a Gateway) the HTTPRoute attaches to."""

    name: str
    """The Gateway's name."""
    namespace: str | None = None
    """The Gateway's namespace; by default the ModelDeployment's."""
    section_name: str | None = None
    """A listener of the Gateway."""


class Router(ApiModel):
    """Which traffic provider splits the requests."""

    provider: ProviderName | None = None
    """builtin (an nginx router), gatewayAPI (an HTTPRoute) or istio (a VirtualService);
    by default the operator's."""
    parent_refs: list[ParentRef] | None = None
    """gatewayAPI: the Gateways to attach to."""
    hosts: list[str] | None = None
    """gatewayAPI and istio: the host names routed, e.g. [fraud.example.com]."""
    gateways: list[str] | None = None
    """istio: the Istio Gateways the VirtualService binds to (default: the mesh)."""

    rules = (
        Rule(
            "!has(self.provider) || self.provider != 'gatewayAPI' || has(self.parentRefs)",
            "router.parentRefs is required with the gatewayAPI provider",
            lambda r: r.provider != "gatewayAPI" or bool(r.parent_refs),
            field_path=".parentRefs",
        ),
    )


class ModelDeploymentSpec(ApiModel):
    """The models to serve and how traffic moves between them."""

    stable: Variant
    """The model serving all traffic when no rollout is under way."""
    canary: Variant | None = None
    """The candidate model; its presence starts a rollout."""
    strategy: Literal["canary", "abTest", "shadow"] = "canary"
    """canary: weighted steps with automated analysis; abTest: a sticky split;
    shadow: the canary gets a mirrored copy of the traffic, its answers are dropped."""
    traffic: Traffic = defaulted(Traffic)
    analysis: Analysis = defaulted(Analysis)
    ab_test: ABTest | None = None
    router: Router = defaulted(Router)

    rules = (
        Rule(
            "!has(self.traffic) || !has(self.traffic.canaryWeight) || has(self.canary)",
            "traffic.canaryWeight needs a canary variant: add spec.canary or remove canaryWeight",
            lambda s: s.traffic.canary_weight is None or s.canary is not None,
        ),
        Rule(
            "self.strategy != 'abTest' || has(self.abTest)",
            "abTest is required when strategy is abTest (header or cookie to hash on)",
            lambda s: s.strategy != "abTest" or s.ab_test is not None,
        ),
        Rule(
            "!has(self.stable.model.selector)",
            "stable.model.selector is not allowed: only the canary can follow new TrainingJobs",
            lambda s: s.stable.model.selector is None,
        ),
    )


class VariantStatus(ApiModel):
    """What a variant serves right now."""

    model: str | None = None
    """The TrainingJob name or the uri being served."""
    uri: str | None = None
    """The artifact served."""
    digest: str | None = None
    """The artifact's pinned digest."""
    replicas: int | None = None
    """Model servers wanted."""
    ready_replicas: int | None = None
    """Model servers ready."""
    weight: int | None = None
    """Percent of live traffic (for shadow: of mirrored traffic)."""


class VariantAnalysis(ApiModel):
    """One variant's numbers over the last analysis interval."""

    requests: float = 0
    """Requests answered in the interval."""
    error_rate: float | None = None
    """The fraction of 5xx answers."""
    latency_p99_ms: float | None = None
    """The 99th-percentile latency in milliseconds."""
    accuracy: float | None = None
    """Online accuracy from feedback, when any was sent."""


class Counters(ApiModel):
    """One model server's cumulative counters at the start of the analysis interval."""

    requests: float = 0
    """Requests answered (mlops_requests_total, all codes)."""
    errors: float = 0
    """Requests answered with a 5xx code."""
    buckets: dict[str, float] | None = None
    """The latency histogram's cumulative bucket counts, by upper bound in seconds."""
    correct: float = 0
    """Feedback rows whose prediction was correct."""
    incorrect: float = 0
    """Feedback rows whose prediction was wrong."""


class AnalysisStatus(ApiModel):
    """The last analysis and its verdict."""

    time: str | None = None
    """When it ran (RFC 3339)."""
    step: int | None = None
    """The index in traffic.steps of the current step."""
    verdict: Literal["Passed", "Failed", "Inconclusive"] | None = None
    """Passed, Failed, or Inconclusive (too few requests)."""
    failures: int = 0
    """Failed analyses in a row."""
    message: str | None = None
    """The analysis in words, with the numbers."""
    stable: VariantAnalysis | None = None
    canary: VariantAnalysis | None = None
    snapshot: dict[str, dict[str, Counters]] | None = None
    """builtin metrics: each variant's model servers' counters at the start of the interval,
    by variant then by server, so an operator restarted mid-interval still differences them."""


class PromotedModel(ApiModel):
    """A canary model that was promoted: the stable variant serves it."""

    model: str | None = None
    """The TrainingJob name or the uri of the promoted model."""
    uri: str
    """The artifact served."""
    digest: str
    """The artifact's pinned digest."""
    replaces: str | None = None
    """The digest spec.stable resolved to at promotion; when spec.stable changes, it wins."""


class ModelDeploymentStatus(ApiModel):
    """What is served, how traffic is split, and how the rollout is going."""

    phase: (
        Literal["Progressing", "Paused", "Promoted", "RolledBack", "Stable", "Degraded", "Failed"]
        | None
    ) = None
    """Progressing, Paused, Promoted, RolledBack, Stable, Degraded or Failed."""
    conditions: list[Condition] | None = None
    """Ready, Progressing, Degraded, and the outcome of the last rollout: Promoted or
    RolledBack (kubectl wait --for=condition=Promoted works)."""
    stable: VariantStatus | None = None
    canary: VariantStatus | None = None
    canary_weight: int | None = None
    """Percent of traffic the canary gets now."""
    analysis: AnalysisStatus | None = None
    promoted: PromotedModel | None = None
    """The last promoted canary model, served by the stable variant until spec.stable changes."""
    url: str | None = None
    """Where clients send requests, inside the cluster."""
    message: str | None = None
    """What happened last, for a person."""
    observed_generation: int | None = None
    """The spec generation the status describes."""


class ModelDeployment(ApiModel):
    """A ModelDeployment manifest."""

    api_version: Literal["mlops.dev/v1alpha1"] = "mlops.dev/v1alpha1"
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: ObjectMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None
