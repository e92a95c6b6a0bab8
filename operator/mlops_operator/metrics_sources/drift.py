"""The stable variant's drift now: the highest feature PSI its model servers report
(``mlops_feature_drift_psi``), scraped from their /metrics or asked of Prometheus."""

from __future__ import annotations

import logging
import math
import urllib.request
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from mlops_operator.api.modeldeployment import MetricsSource as MetricsSourceSpec
from mlops_operator.metrics_sources.prometheus import PrometheusSource, QueryError

PSI = "mlops_feature_drift_psi"
log = logging.getLogger(__name__)


def highest_psi(text: str) -> float | None:
    """The highest PSI in a model server's exposition (None when it reports none)."""
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == PSI and not math.isnan(sample.value)
    ]
    return max(values) if values else None


def scraped(urls: Iterable[str], timeout: float = 5.0) -> float | None:
    """The highest PSI over the servers that answer."""
    found = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                value = highest_psi(response.read().decode())
        except (OSError, ValueError) as error:
            log.warning("cannot read drift from %s: %s", url, error)
            continue
        if value is not None:
            found.append(value)
    return max(found) if found else None


def stable_drift(
    spec: MetricsSourceSpec,
    selector: str,
    *,
    namespace: str,
    name: str,
    urls: Iterable[str],
    at: float,
) -> float | None:
    """The stable variant's highest feature PSI, from the source the analysis uses."""
    if spec.source == "prometheus" and spec.prometheus_url:
        source = PrometheusSource(spec.prometheus_url, selector)
        sel = selector.format(namespace=namespace, name=name, variant="stable")
        try:
            result = source.query(f"max({PSI}{{{sel}}})", at)
        except QueryError as error:
            log.warning("%s/%s: cannot query drift: %s", namespace, name, error)
            return None
        values = [float(item["value"][1]) for item in result]
        values = [v for v in values if not math.isnan(v)]
        return max(values) if values else None
    return scraped(urls)
