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
            "Inference requests answered, by HTTP status code.",
            [*labels, "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            metric_names.REQUEST_DURATION,
            "Inference request latency in the server, from the full body to the response.",
            labels,
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
            "(correct|incorrect for classifiers, observed for regressors).",
            [*labels, "outcome"],
            registry=self.registry,
        )
        self.feedback_abs_error = Counter(
            "mlops_feedback_absolute_error",
            "Sum of absolute errors of regression rows with feedback (divide by "
            'mlops_feedback_total{outcome="observed"} for the online MAE).',
            labels,
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
        self.ready = Gauge(
            "mlops_model_ready",
            "1 when the model is loaded and the server answers inference requests.",
            labels,
            registry=self.registry,
        )
        self._duration = self.duration.labels(model, variant)
        self._batch_size = self.batch_size.labels(model, variant)
        self._codes: dict[int, Counter] = {}
        self._errors: dict[str, Counter] = {}
        self._classes: dict[str, Counter] = {}
        self.ready.labels(model, variant).set(0)

    def serving_with(self, runtime: str) -> None:
        self.runtime.labels(self.model, self.variant, runtime).set(1)
        self._predict_duration = self.predict_duration.labels(self.model, self.variant, runtime)

    def predict_took(self, seconds: float) -> None:
        self._predict_duration.observe(seconds)

    def add_collector(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.registry.register(_Callback(collect))

    def gauge_family(self, name: str, documentation: str, extra: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=["model", "variant", *extra])

    def request(self, code: int, seconds: float) -> None:
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = self.requests.labels(self.model, self.variant, str(code))
        counter.inc()
        self._duration.observe(seconds)

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

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
