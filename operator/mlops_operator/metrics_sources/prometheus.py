"""The prometheus source: the increases over the interval from a Prometheus query API."""

from __future__ import annotations

import http.client
import json
import logging
import math
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

from mlops_operator import defaults
from mlops_operator.canary.metrics import Counters, VariantMetrics, summarize
from mlops_operator.metrics_sources.source import (
    COUNTED,
    LATENCY_BUCKETS,
    Reading,
    Sources,
    Window,
    bound,
    counters,
    matcher,
)
from mlops_operator.objects import VARIANTS
from model_server.metric_names import REQUEST_DURATION

log = logging.getLogger(__name__)


class QueryError(Exception):
    """Prometheus could not answer."""


class PrometheusSource:
    def __init__(
        self,
        url: str,
        selector: str = defaults.PROMETHEUS_SELECTOR,
        timeout: float = 10.0,
        sources: Sources = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.selector = selector
        self.timeout = timeout
        self.sources = sources
        """Which requests count (source.sources_for; None: all)."""

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """An instant query's vector result."""
        params = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        url = f"{self.url}/api/v1/query?{params}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except (OSError, ValueError, http.client.HTTPException) as error:
            raise QueryError(f"{self.url}: {error}") from error
        if body.get("status") != "success":
            raise QueryError(f"{self.url}: {body.get('errorType')}: {body.get('error')}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else []

    def _by(self, expr: str, label: str, at: float) -> Iterable[tuple[str, float]]:
        for item in self.query(expr, at):
            value = float(item["value"][1])
            if not math.isnan(value):
                yield item["metric"].get(label, ""), value

    def increases(
        self, namespace: str, name: str, variant: str, window: float, at: float
    ) -> Counters:
        """The variant's counter increases over ``window`` seconds ending at ``at``."""
        sel = self.selector.format(namespace=namespace, name=name, variant=variant)
        rng = f"[{max(1, round(window))}s]"
        samples = []
        for metric, label in dict.fromkeys((s.metric, s.label) for s in COUNTED):
            only = matcher(metric, self.sources)
            expr = f"sum by ({label}) (increase({metric}_total{{{sel}{only}}}{rng}))"
            samples += [(f"{metric}_total", {label: v}, n) for v, n in self._by(expr, label, at)]
        only = matcher(REQUEST_DURATION, self.sources)
        expr = f"sum by (le) (increase({LATENCY_BUCKETS}{{{sel}{only}}}{rng}))"
        return counters(samples, {bound(le): n for le, n in self._by(expr, "le", at)})

    def read(
        self, namespace: str, name: str, variants: Iterable[str], since: float, at: float
    ) -> dict[str, VariantMetrics | None]:
        """Each variant's metrics over [since, at] (None when Prometheus has no series)."""
        out: dict[str, VariantMetrics | None] = {}
        for variant in variants:
            counters = self.increases(namespace, name, variant, at - since, at)
            out[variant] = summarize(counters) if counters.buckets or counters.requests else None
        return out

    def measure(self, window: Window) -> Reading:
        """The variants' metrics over the window; none when Prometheus cannot answer (the
        analysis is then inconclusive, and the next interval asks again)."""
        try:
            return Reading(
                self.read(window.namespace, window.name, VARIANTS, window.since, window.now),
                None,
            )
        except QueryError as error:
            log.warning("%s/%s: cannot query Prometheus: %s", window.namespace, window.name, error)
            problem = f"analysis.metrics.prometheusUrl: cannot query Prometheus at {error}"
            return Reading({}, None, problem)

    def begin(self, window: Window) -> None:
        """Prometheus keeps the counters: nothing to remember at the window's start."""
        return
