"""Where the analysis reads the variants' metrics (I/O; the math is in mlops_operator.canary).

- builtin: scrape the model servers' /metrics and difference the counters against the
  snapshot kept in the status;
- prometheus: ask a Prometheus server for the increases over the interval.
"""

from mlops_operator.metrics_sources.builtin import BuiltinSource, parse_exposition, scrape
from mlops_operator.metrics_sources.prometheus import PrometheusSource, QueryError

__all__ = ["BuiltinSource", "PrometheusSource", "QueryError", "parse_exposition", "scrape"]
