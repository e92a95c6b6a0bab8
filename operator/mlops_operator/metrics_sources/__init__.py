"""Where the analysis reads the variants' metrics (I/O; the math is in mlops_operator.canary).

- builtin: scrape the model servers' /metrics and difference the counters against the
  snapshot kept in the status;
- prometheus: ask a Prometheus server for the increases over the interval.

Both are a :class:`MetricsSource`: the controller and the local runner ask :func:`source_for`.
"""

from mlops_operator.api.modeldeployment import MetricsSource as MetricsSourceSpec
from mlops_operator.metrics_sources.builtin import BuiltinSource, parse_exposition, scrape
from mlops_operator.metrics_sources.prometheus import PrometheusSource, QueryError
from mlops_operator.metrics_sources.source import MetricsSource, Reading, Window


def source_for(spec: MetricsSourceSpec, prometheus_selector: str) -> MetricsSource:
    """The source a ModelDeployment's analysis.metrics names."""
    if spec.source == "prometheus" and spec.prometheus_url:
        return PrometheusSource(spec.prometheus_url, prometheus_selector)
    return BuiltinSource()


__all__ = [
    "BuiltinSource",
    "MetricsSource",
    "PrometheusSource",
    "QueryError",
    "Reading",
    "Window",
    "parse_exposition",
    "scrape",
    "source_for",
]
