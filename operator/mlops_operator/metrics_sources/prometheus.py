"""The prometheus source: the increases over the interval from a Prometheus query API."""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

from mlops_operator.canary.metrics import Counters, VariantMetrics, summarize

DEFAULT_SELECTOR = 'namespace="{namespace}",model="{name}",variant="{variant}"'
"""Which series belong to a variant; {namespace}, {name} (the ModelDeployment, which is the
served model name) and {variant} are filled in."""


class QueryError(Exception):
    """Prometheus could not answer."""


class PrometheusSource:
    def __init__(self, url: str, selector: str = DEFAULT_SELECTOR, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.selector = selector
        self.timeout = timeout

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """An instant query's vector result."""
        params = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        url = f"{self.url}/api/v1/query?{params}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except (OSError, ValueError) as error:
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
        requests = errors = 0.0
        for code, value in self._by(
            f"sum by (code) (increase(mlops_requests_total{{{sel}}}{rng}))", "code", at
        ):
            requests += value
            if code.startswith("5"):
                errors += value
        buckets = {
            math.inf if le == "+Inf" else float(le): value
            for le, value in self._by(
                f"sum by (le) (increase(mlops_request_duration_seconds_bucket{{{sel}}}{rng}))",
                "le",
                at,
            )
        }
        feedback = dict(
            self._by(
                f"sum by (outcome) (increase(mlops_feedback_total{{{sel}}}{rng}))", "outcome", at
            )
        )
        return Counters(
            requests=requests,
            errors=errors,
            buckets=buckets,
            correct=feedback.get("correct", 0.0),
            incorrect=feedback.get("incorrect", 0.0),
        )

    def read(
        self, namespace: str, name: str, variants: Iterable[str], since: float, at: float
    ) -> dict[str, VariantMetrics | None]:
        """Each variant's metrics over [since, at] (None when Prometheus has no series)."""
        out: dict[str, VariantMetrics | None] = {}
        for variant in variants:
            counters = self.increases(namespace, name, variant, at - since, at)
            out[variant] = summarize(counters) if counters.buckets or counters.requests else None
        return out
