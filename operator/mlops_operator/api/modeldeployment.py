"""The ModelDeployment resource: serve a model and roll new ones out safely."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from mlops_operator.api.base import ApiModel, Rule, defaulted
from mlops_operator.api.common import (
    CHILD_SUFFIX_MAX,
    DNS_1035_PATTERN,
    DURATION_PATTERN,
    NAME_MAX,
    Condition,
    ModelRef,
    ObjectMeta,
    Resources,
    name_rules,
)

Percent = Annotated[int, Field(ge=0, le=100)]
ProviderName = Literal["builtin", "gatewayAPI", "istio"]
"""The traffic providers: one row each in mlops_operator.traffic.providers.PROVIDERS."""
NAME_MOST = NAME_MAX - CHILD_SUFFIX_MAX
MIN_INTERVAL_SECONDS = 1
HOST_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HTTP_URL_PATTERN = (
    r"^https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?)"
    r"(:[0-9]{1,5})?(/[^\s]*)?$"
)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def interval_seconds(text: str) -> float | None:
    """A traffic.interval in seconds; None when it is not one (CEL's duration() reads the same)."""
    found = re.fullmatch(DURATION_PATTERN, text)
    if found is None:
        return None
    return int(text[: found.start(1)]) * _UNITS[found.group(1)]


def _long_enough(interval: str) -> bool:
    seconds = interval_seconds(interval)
    return seconds is None or seconds >= MIN_INTERVAL_SECONDS


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


class Explain(ApiModel):
    """Per-prediction explanations (shap) on the variant's model servers."""

    enabled: bool = False
    """Answer POST /v2/models/<name>/explain (off by default: it costs CPU and memory)."""
    samples: Annotated[int, Field(ge=10, le=100_000)] = 200
    """Estimators that are neither tree ensembles nor linear: model evaluations per row."""
    max_rows: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Most rows in one explain request."""

    def server_env(self) -> dict[str, str]:
        """The model server's settings (MLOPS_* variables) this asks for."""
        if not self.enabled:
            return {}
        return {
            "MLOPS_EXPLAIN": "true",
            "MLOPS_EXPLAIN_SAMPLES": str(self.samples),
            "MLOPS_EXPLAIN_MAX_ROWS": str(self.max_rows),
        }


class Variant(ApiModel):
    """A model and the model servers that serve it."""

    model: ModelRef
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Model servers to run (without autoscaling)."""
    resources: Resources | None = None
    autoscaling: Autoscaling | None = None
    explain: Explain | None = None
    """Per-prediction explanations on this variant's servers."""


class Traffic(ApiModel):
    """How traffic moves to the canary: a fixed weight, or steps at an interval."""

    canary_weight: Percent | None = None
    """A manual split: the percentage of requests the canary gets, held as it is."""
    steps: Annotated[list[Annotated[int, Field(ge=1, le=100)]] | None, Field(max_length=20)] = None
    """Canary weights to go through, strictly ascending, e.g. [10, 25, 50]; after the last
    healthy step the canary is promoted."""
    interval: Annotated[str, Field(pattern=DURATION_PATTERN, max_length=16)] = "1m"
    """How long each step lasts and how often the analysis runs, e.g. 30s, 2m (at least 1s)."""
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
        Rule(
            "!has(self.steps) || size(self.steps) > 0",
            "traffic.steps must not be empty: list the weights, e.g. [10, 25, 50], or leave "
            "steps out for the default 10, 25, 50",
            lambda t: t.steps is None or len(t.steps) > 0,
            field_path=".steps",
        ),
        Rule(
            f"!has(self.interval) || !self.interval.matches(r'{DURATION_PATTERN}') "
            f"|| duration(self.interval) >= duration('{MIN_INTERVAL_SECONDS}s')",
            f"traffic.interval must be at least {MIN_INTERVAL_SECONDS}s: each interval is one "
            "analysis of the metrics, e.g. 30s",
            lambda t: _long_enough(t.interval),
            field_path=".interval",
        ),
    )


class MetricsSource(ApiModel):
    """Where the analysis reads the variants' metrics."""

    source: Literal["builtin", "prometheus"] = "builtin"
    """builtin scrapes the model servers' /metrics; prometheus queries a Prometheus server."""
    prometheus_url: Annotated[str | None, Field(max_length=2048)] = None
    """The Prometheus server, e.g. http://prometheus.monitoring:9090."""

    rules = (
        Rule(
            "!has(self.source) || self.source != 'prometheus' || has(self.prometheusUrl)",
            "analysis.metrics.prometheusUrl is required when source is prometheus",
            lambda m: m.source != "prometheus" or m.prometheus_url is not None,
            field_path=".prometheusUrl",
        ),
        Rule(
            f"!has(self.prometheusUrl) || self.prometheusUrl.matches(r'{HTTP_URL_PATTERN}')",
            "analysis.metrics.prometheusUrl: an http(s) URL with a host name and no spaces, "
            "e.g. http://prometheus.monitoring:9090",
            lambda m: (
                m.prometheus_url is None
                or re.fullmatch(HTTP_URL_PATTERN, m.prometheus_url) is not None
            ),
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
    max_latency_p99_ratio: Annotated[float | None, Field(gt=0, le=1000)] = None
    """Compared with the stable variant: the canary's p99 may be at most this many times the
    stable's over the same interval, e.g. 1.5."""
    min_agreement: Annotated[float | None, Field(ge=0, le=1)] = None
    """strategy shadow: the lowest fraction of mirrored rows whose prediction agrees with the
    stable model's prediction of the same input, e.g. 0.95 (docs/rollout-control.md)."""
    agreement_tolerance: Annotated[float | None, Field(ge=0)] = None
    """strategy shadow, regressors: predictions at most this far apart agree (default 0:
    equal); classifiers agree on equal classes."""
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


class BlueGreen(ApiModel):
    """Blue-green: the candidate at full size behind a preview Service, then all traffic moves
    to it at once; the old variant keeps running for scaleDownDelay, so an abort is instant."""

    pre_promotion_analysis: bool = True
    """Judge the preview (spec.analysis, each traffic.interval) before switching. Its traffic
    is yours to send: the <name>-preview Service, the entry with the header
    x-mlops-variant: canary, or a rollout webhook running a load test."""
    auto_promote: bool = True
    """Switch by itself once the preview is ready (and its analysis passed); false: wait for
    `mlops promote`."""
    scale_down_delay: Annotated[str, Field(pattern=DURATION_PATTERN)] = "30s"
    """How long the old variant keeps its servers after the switch (an abort within it moves
    traffic back at once); then the candidate is promoted."""


WebhookKind = Literal[
    "pre-rollout", "rollout", "confirm-rollout", "confirm-promotion", "post-rollout", "rollback"
]
"""Flagger's hook points (mlops_operator.canary.hooks says what each answer does)."""


class Webhook(ApiModel):
    """An HTTP endpoint called with a JSON POST at one point of every rollout."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    """Names the hook in conditions, Events and status.webhooks."""
    type: WebhookKind
    """pre-rollout, rollout (each interval), confirm-rollout, confirm-promotion (gates that
    hold until a 2xx answer), post-rollout, or rollback (a 2xx answer rolls back)."""
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)]
    """Where the POST goes, e.g. http://loadtester.test/gate/approve."""
    timeout: Annotated[str, Field(pattern=DURATION_PATTERN)] = "10s"
    """How long one attempt may take."""
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Attempts after the first when there is no answer or a 5xx one (a 4xx is final)."""
    metadata: dict[str, str] | None = None
    """Sent as the body's metadata, e.g. the command a load tester should run."""


NotificationEvent = Literal["started", "step", "paused", "promoted", "rolledBack", "failed"]
"""What a rollout notifies (mlops_operator.canary.notifications maps decisions to them)."""


class NotificationSink(ApiModel):
    """Where rollout notifications go: a generic JSON webhook or a Slack incoming webhook."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    """Names the sink in the operator's logs and metrics."""
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)]
    """The endpoint, e.g. https://hooks.slack.com/services/T000/B000/XXXX."""
    format: Literal["generic", "slack"] = "generic"
    """generic: the documented JSON body; slack: {"text": ...} (Slack-compatible, also
    Mattermost and Rocket.Chat incoming webhooks)."""
    events: Annotated[list[NotificationEvent], Field(min_length=1, max_length=6)] | None = None
    """The events sent; by default all: started, step, paused, promoted, rolledBack, failed."""
    timeout: Annotated[str, Field(pattern=DURATION_PATTERN)] = "5s"
    """How long one attempt may take (never holding a rollout: sinks are called apart)."""
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Attempts after the first when there is no answer or a 5xx one."""


class Retraining(ApiModel):
    """Sustained drift on the stable variant starts a new run of its TrainingJob."""

    training_job: Annotated[str | None, Field(max_length=253)] = None
    """The TrainingJob a run is made of (its spec, its labels: a canary whose selector
    follows them rolls the new model out); by default spec.stable.model.trainingJob."""
    max_psi: Annotated[float, Field(gt=0)] = 0.2
    """An interval drifts when the stable model servers' highest feature PSI
    (mlops_feature_drift_psi) is above this."""
    intervals: Annotated[int, Field(ge=1, le=100)] = 3
    """Drifting intervals in a row that start a run."""
    interval: Annotated[str, Field(pattern=DURATION_PATTERN)] = "1m"
    """How often the drift is read (while no rollout is under way)."""
    cooldown: Annotated[str, Field(pattern=DURATION_PATTERN)] = "1h"
    """At most one run per cooldown."""


class RollbackWindow(ApiModel):
    """Going back to a model that was stable recently skips the steps and the analysis."""

    promotions: Annotated[int, Field(ge=1, le=10)]
    """A canary whose model the stable variant served within the last this many promotions
    is promoted at once (status.history holds them)."""


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
    parent_refs: Annotated[list[ParentRef] | None, Field(max_length=32)] = None
    """gatewayAPI: the Gateways to attach to."""
    hosts: Annotated[list[Annotated[str, Field(max_length=253)]] | None, Field(max_length=16)] = (
        None
    )
    """gatewayAPI and istio: the host names routed, e.g. [fraud.example.com] (no scheme,
    port or path)."""
    gateways: list[str] | None = None
    """istio: the Istio Gateways the VirtualService binds to (default: the mesh)."""

    rules = (
        Rule(
            "!has(self.provider) || self.provider != 'gatewayAPI' "
            "|| (has(self.parentRefs) && size(self.parentRefs) > 0)",
            "router.parentRefs is required with the gatewayAPI provider",
            lambda r: r.provider != "gatewayAPI" or bool(r.parent_refs),
            field_path=".parentRefs",
        ),
        Rule(
            f"!has(self.hosts) || self.hosts.all(h, h.matches(r'{HOST_PATTERN}'))",
            "router.hosts: host names such as iris.example.com or *.example.com, without a "
            "scheme, port or path",
            lambda r: all(re.fullmatch(HOST_PATTERN, h) for h in r.hosts or ()),
            field_path=".hosts",
        ),
    )


class ModelDeploymentSpec(ApiModel):
    """The models to serve and how traffic moves between them."""

    stable: Variant
    """The model serving all traffic when no rollout is under way."""
    canary: Variant | None = None
    """The candidate model; its presence starts a rollout."""
    strategy: Literal["canary", "blueGreen", "abTest", "shadow"] = "canary"
    """canary: weighted steps with automated analysis; blueGreen: a preview at full size,
    then all traffic at once; abTest: a sticky split; shadow: the canary gets a mirrored copy
    of the traffic, its answers are dropped."""
    traffic: Traffic = defaulted(Traffic)
    analysis: Analysis = defaulted(Analysis)
    blue_green: BlueGreen | None = None
    """blueGreen's settings (all defaulted)."""
    webhooks: Annotated[list[Webhook] | None, Field(max_length=20)] = None
    """Called at Flagger's points of every rollout (docs/rollout-control.md)."""
    notifications: Annotated[list[NotificationSink] | None, Field(max_length=10)] = None
    """Sinks told of each rollout's events, besides the operator-wide ones."""
    rollback_window: RollbackWindow | None = None
    """Returning to a recently stable model is promoted without steps or analysis."""
    retraining: Retraining | None = None
    """Drift-triggered retraining: sustained drift starts a run of the stable model's
    TrainingJob (docs/rollout-control.md)."""
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
        Rule(
            "self.strategy == 'canary' || !has(self.traffic) "
            "|| (!has(self.traffic.canaryWeight) && !has(self.traffic.steps))",
            "traffic.canaryWeight and traffic.steps apply to the canary strategy only: abTest "
            "splits by abTest.canaryPercent, shadow mirrors all the traffic, blueGreen "
            "switches all of it at once",
            lambda s: (
                s.strategy == "canary"
                or (s.traffic.canary_weight is None and s.traffic.steps is None)
            ),
        ),
        Rule(
            "!has(self.retraining) || has(self.retraining.trainingJob) "
            "|| has(self.stable.model.trainingJob)",
            "retraining.trainingJob is required when spec.stable.model names no trainingJob",
            lambda s: (
                s.retraining is None
                or s.retraining.training_job is not None
                or s.stable.model.training_job is not None
            ),
        ),
        Rule(
            "self.strategy == 'shadow' || !has(self.analysis) "
            "|| (!has(self.analysis.minAgreement) && !has(self.analysis.agreementTolerance))",
            "analysis.minAgreement and analysis.agreementTolerance apply to strategy shadow "
            "only: agreement is measured on the mirrored requests by the shadow's servers",
            lambda s: (
                s.strategy == "shadow"
                or (s.analysis.min_agreement is None and s.analysis.agreement_tolerance is None)
            ),
        ),
        Rule(
            "self.strategy == 'blueGreen' || !has(self.blueGreen)",
            "blueGreen applies to strategy blueGreen only: set strategy: blueGreen or remove it",
            lambda s: s.strategy == "blueGreen" or s.blue_green is None,
        ),
        Rule(
            "!has(self.webhooks) || self.webhooks.all(w, "
            "self.webhooks.filter(x, x.name == w.name).size() == 1)",
            "webhooks: each name once (it names the hook in conditions and status)",
            lambda s: len({w.name for w in s.webhooks or ()}) == len(s.webhooks or ()),
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
    agreement: float | None = None
    """shadow: the fraction of its rows whose prediction agreed with the stable model's."""
    compared: float | None = None
    """shadow: the rows compared with the stable model's predictions (agreed or not)."""


class Comparison(ApiModel):
    """The canary against the stable variant over the same interval."""

    error_rate_increase: float | None = None
    """The canary's error rate minus the stable's."""
    latency_p99_increase_ms: float | None = None
    """The canary's p99 minus the stable's, in milliseconds."""
    latency_p99_ratio: float | None = None
    """The canary's p99 divided by the stable's."""
    accuracy_drop: float | None = None
    """The stable's online accuracy minus the canary's."""


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
    agree: float = 0
    """shadow: rows whose prediction agreed with the stable model's."""
    disagree: float = 0
    """shadow: rows whose prediction differed from the stable model's."""
    skipped: float = 0
    """shadow: rows not compared with the stable model's prediction."""


class AnalysisStatus(ApiModel):
    """The last analysis and its verdict."""

    time: str | None = None
    """When it ran (RFC 3339)."""
    step: int | None = None
    """The index in traffic.steps of the current step."""
    verdict: Literal["Passed", "Failed", "Inconclusive"] | None = None
    """Passed, Failed, or Inconclusive (too few requests)."""
    judged: str | None = None
    """When the verdict was given (RFC 3339)."""
    weight: int | None = None
    """The canary's weight during the interval judged."""
    gate: Literal["confirm-rollout", "pre-rollout", "confirm-promotion"] | None = None
    """The webhook gate the rollout waits at."""
    failures: int = 0
    """Failed analyses in a row."""
    message: str | None = None
    """The analysis in words, with the numbers."""
    stable: VariantAnalysis | None = None
    canary: VariantAnalysis | None = None
    comparison: Comparison | None = None
    """The canary against the stable variant over the interval judged."""
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


class PreviousModel(ApiModel):
    """The model the stable variant served before a promotion."""

    model: str | None = None
    """The TrainingJob name or the uri."""
    uri: str
    """The artifact."""
    digest: str
    """The artifact's pinned digest."""


class HandoffStatus(ApiModel):
    """A promotion under way: the stable variant takes the canary's model without losing a
    request (docs/modeldeployment.md, The promotion's hand-off)."""

    stage: Literal["shift", "roll", "switch", "retire"]
    """shift: all predictions go to the canary; roll: the stable servers roll to its model;
    switch: all go to the stable servers, the canary's take feedback only; retire: the
    canary's servers go."""
    since: str | None = None
    """When the stage began (RFC 3339)."""
    settled: str | None = None
    """switch: when every router Pod ran it (the feedback grace counts from it)."""
    previous: PreviousModel
    """The model the stable variant served before the promotion."""


class ControlStatus(ApiModel):
    """Manual control: the last command (the mlops.dev/command annotation) handled."""

    command: str | None = None
    """The annotation's value handled last; a new value (a new nonce) acts again."""
    paused: bool = False
    """Paused by a command until resumed."""
    message: str | None = None
    """What the command did, or why it was ignored."""
    time: str | None = None
    """When it was handled (RFC 3339)."""


class WebhookStatus(ApiModel):
    """A webhook's last call."""

    name: str
    """The webhook's name."""
    type: str
    """Its kind (pre-rollout, rollout, ...)."""
    ok: bool
    """It answered 2xx."""
    code: int | None = None
    """The HTTP status (unset: no answer)."""
    message: str | None = None
    """The answer's start, or why there was none."""
    attempts: int = 1
    """Requests sent (the first and the retries)."""
    time: str | None = None
    """When it answered (RFC 3339)."""


class RetrainingStatus(ApiModel):
    """Drift-triggered retraining: the drift read, and the runs it started."""

    checked: str | None = None
    """When the drift was read last (RFC 3339)."""
    psi: float | None = None
    """The stable model servers' highest feature PSI then (unset: none reported yet)."""
    drifting: int = 0
    """Drifting intervals in a row."""
    triggered: str | None = None
    """When the last run was started (RFC 3339); the cooldown counts from it."""
    run: str | None = None
    """The last run started."""
    runs: int = 0
    """Runs started so far."""
    message: str | None = None
    """Why the last run started, or where the drift stands."""


class RolloutRecord(ApiModel):
    """One rollout of a canary model and how it ended."""

    model: str | None = None
    """The TrainingJob name or the uri of the canary model."""
    digest: str
    """The canary model's digest."""
    replaces: str | None = None
    """The digest the stable variant served when the rollout started."""
    started: str | None = None
    """When it started (RFC 3339)."""
    finished: str | None = None
    """When it ended (RFC 3339); unset while it is under way."""
    outcome: Literal["Promoted", "RolledBack", "Aborted", "Superseded", "Cancelled"] | None = None
    """Promoted, RolledBack (failed analyses), Aborted (by hand), Superseded (a newer canary
    started) or Cancelled (the canary was removed); unset while it is under way."""
    message: str | None = None
    """The last word on it."""


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
    handoff: HandoffStatus | None = None
    """The promotion's hand-off while it is under way."""
    control: ControlStatus | None = None
    webhooks: Annotated[list[WebhookStatus] | None, Field(max_length=40)] = None
    """Each webhook's last call, by name."""
    retraining: RetrainingStatus | None = None
    history: Annotated[list[RolloutRecord] | None, Field(max_length=20)] = None
    """The last rollouts, oldest first (`mlops history`)."""
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

    rules = name_rules(
        NAME_MOST,
        DNS_1035_PATTERN,
        f"its Services are named <name>-stable, -canary and -router, within {NAME_MAX}",
    )
