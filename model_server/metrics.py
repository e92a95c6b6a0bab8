"""Prometheus metrics, on a registry owned by each server instance (never the global one).

The canary analysis scrapes these and differences the counters between scrapes: names and
labels are a stable interface (docs/model-server.md lists them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from model_server import metric_names

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
PREDICT_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    1.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
AGREEMENT_OUTCOMES = ("agree", "disagree", "skipped")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Callback(Collector):
    """A collector computing gauges at scrape time (drift, online accuracy)."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


class Metrics:
    def __init__(self, model: str, variant: str) -> None:
        self.model = model
        self.variant = variant
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "variant"]
        self.requests = Counter(
            metric_names.REQUESTS,
            "Inference requests answered, by HTTP status code and source (router: proved to "
            "come through the builtin router; direct: any other).",
            [*labels, "code", metric_names.SOURCE],
            registry=self.registry,
        )
        self.duration = Histogram(
            metric_names.REQUEST_DURATION,
            "Inference request latency in the server, from the full body to the response, by "
            "source.",
            [*labels, metric_names.SOURCE],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mlops_batch_size",
            "Rows per predict call after adaptive batching.",
            labels,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mlops_predictions",
            'Predicted rows by predicted class (classifiers; regressors count class="").',
            [*labels, "class"],
            registry=self.registry,
        )
        self.input_errors = Counter(
            "mlops_input_errors",
            "Inference requests refused for the client's input, by reason.",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.feedback = Counter(
            metric_names.FEEDBACK,
            "Rows with ground truth received through feedback, by outcome "
            "(correct|incorrect for classifiers, observed for regressors) and source.",
            [*labels, "outcome", metric_names.SOURCE],
            registry=self.registry,
        )
        self.feedback_abs_error = Counter(
            "mlops_feedback_absolute_error",
            "Sum of absolute errors of regression rows with feedback (divide by "
            'mlops_feedback_total{outcome="observed"} for the online MAE).',
            labels,
            registry=self.registry,
        )
        self.agreement = Counter(
            metric_names.AGREEMENT,
            "Predicted rows compared with the reference model's prediction of the same input "
            "(strategy shadow: the stable model's), by outcome: agree, disagree, or skipped "
            "(not compared: the comparison queue was full or the reference refused the input), "
            "and source.",
            [*labels, "outcome", metric_names.SOURCE],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mlops_model_info",
            "The served model: always 1, labelled with its version and digest.",
            [*labels, "version", "digest"],
            registry=self.registry,
        )
        self.runtime = Gauge(
            "mlops_model_runtime",
            "The runtime that predicts: always 1, labelled runtime=onnx or runtime=sklearn.",
            [*labels, "runtime"],
            registry=self.registry,
        )
        self.predict_duration = Histogram(
            "mlops_predict_duration_seconds",
            "Time of one predict call (a whole batch) in the runtime, by runtime.",
            [*labels, "runtime"],
            buckets=PREDICT_BUCKETS,
            registry=self.registry,
        )
        self.explain_duration = Histogram(
            "mlops_explain_duration_seconds",
            "Time to explain one explain request (all its rows), by explainer.",
            [*labels, "explainer"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.explained_rows = Counter(
            "mlops_explained_rows",
            "Rows explained, by explainer.",
            [*labels, "explainer"],
            registry=self.registry,
        )
        self.explain_evaluations = Counter(
            "mlops_explain_model_evaluations",
            "Model evaluations the explanations cost (rows for the exact explainers; the "
            "sample budget per row for the permutation explainer), by explainer.",
            [*labels, "explainer"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "mlops_model_ready",
            "1 when the model is loaded and the server answers inference requests.",
            labels,
            registry=self.registry,
        )
        self._durations = {
            source: self.duration.labels(model, variant, source) for source in metric_names.SOURCES
        }
        self._batch_size = self.batch_size.labels(model, variant)
        self._codes: dict[tuple[int, str], Counter] = {}
        self._errors: dict[str, Counter] = {}
        self._classes: dict[str, Counter] = {}
        self.ready.labels(model, variant).set(0)

    def serving_with(self, runtime: str) -> None:
        self.runtime.labels(self.model, self.variant, runtime).set(1)
        self._predict_duration = self.predict_duration.labels(self.model, self.variant, runtime)

    def predict_took(self, seconds: float) -> None:
        self._predict_duration.observe(seconds)

    def explained(self, explainer: str, rows: int, evaluations: int, seconds: float) -> None:
        labels = (self.model, self.variant, explainer)
        self.explain_duration.labels(*labels).observe(seconds)
        self.explained_rows.labels(*labels).inc(rows)
        self.explain_evaluations.labels(*labels).inc(evaluations)

    def add_collector(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.registry.register(_Callback(collect))

    def gauge_family(self, name: str, documentation: str, extra: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=["model", "variant", *extra])

    def request(self, code: int, seconds: float, source: str = metric_names.DIRECT) -> None:
        counter = self._codes.get((code, source))
        if counter is None:
            counter = self._codes[code, source] = self.requests.labels(
                self.model, self.variant, str(code), source
            )
        counter.inc()
        self._durations[source].observe(seconds)

    def input_error(self, reason: str) -> None:
        counter = self._errors.get(reason)
        if counter is None:
            counter = self._errors[reason] = self.input_errors.labels(
                self.model, self.variant, reason
            )
        counter.inc()

    def batch(self, rows: int) -> None:
        self._batch_size.observe(rows)

    def predicted(self, label: str, count: int) -> None:
        counter = self._classes.get(label)
        if counter is None:
            counter = self._classes[label] = self.predictions.labels(
                self.model, self.variant, label
            )
        counter.inc(count)

    def comparing(self) -> None:
        """A reference model is compared with: every outcome's series exists from zero (so
        Prometheus' increase() counts the first rows too)."""
        for outcome in AGREEMENT_OUTCOMES:
            for source in metric_names.SOURCES:
                self.agreement.labels(self.model, self.variant, outcome, source)

    def compared(self, outcome: str, rows: int, source: str = metric_names.DIRECT) -> None:
        if rows:
            self.agreement.labels(self.model, self.variant, outcome, source).inc(rows)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
