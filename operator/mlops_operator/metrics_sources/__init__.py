"""Where the analysis reads the variants' metrics (I/O; the math is in mlops_operator.canary).

- builtin: scrape the model servers' /metrics and difference the counters against the
  snapshot kept in the status;
- prometheus: ask a Prometheus server for the increases over the interval.

Both are a :class:`MetricsSource`: the controller and the local runner ask :func:`source_for`.
Both count only the requests the builtin router proved when it is the provider
(source.sources_for).
"""

from mlops_operator.api.modeldeployment import MetricsSource as MetricsSourceSpec
from mlops_operator.metrics_sources.builtin import BuiltinSource, parse_exposition, scrape
from mlops_operator.metrics_sources.prometheus import PrometheusSource, QueryError
from mlops_operator.metrics_sources.source import (
    MetricsSource,
    Reading,
    Sources,
    Window,
    sources_for,
)


def source_for(
    spec: MetricsSourceSpec, prometheus_selector: str, sources: Sources = None
) -> MetricsSource:
    """The source a ModelDeployment's analysis.metrics names, counting ``sources``."""
    if spec.source == "prometheus" and spec.prometheus_url:
        return PrometheusSource(spec.prometheus_url, prometheus_selector, sources=sources)
    return BuiltinSource(sources=sources)


__all__ = [
    "BuiltinSource",
    "MetricsSource",
    "PrometheusSource",
    "QueryError",
    "Reading",
    "Sources",
    "Window",
    "parse_exposition",
    "scrape",
    "source_for",
    "sources_for",
]
