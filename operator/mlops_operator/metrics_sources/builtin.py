"""The builtin source: scrape each model server's /metrics and difference the counters."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families

from mlops_operator.canary.metrics import Counters, VariantMetrics, difference, lost, summarize
from mlops_operator.metrics_sources.source import (
    LATENCY_BUCKETS,
    Reading,
    Sources,
    Window,
    bound,
    counted,
    counters,
)
from model_server.metric_names import REQUEST_DURATION

log = logging.getLogger(__name__)


def parse_exposition(text: str, sources: Sources = None) -> Counters:
    """A model server's cumulative counters from its Prometheus text exposition, counting the
    samples of ``sources`` (source.counted)."""
    samples = []
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == LATENCY_BUCKETS:
                if counted(REQUEST_DURATION, sample.labels, sources):
                    le = bound(sample.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + sample.value
            else:
                samples.append((sample.name, sample.labels, sample.value))
    return counters(samples, buckets, sources)


def scrape(url: str, timeout: float = 5.0, sources: Sources = None) -> Counters:
    """GET a model server's /metrics and parse it."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse_exposition(response.read().decode(), sources)


class BuiltinSource:
    """Scrapes the targets of each variant: {variant: {server key (e.g. Pod name): URL}}.
    ``sources``: which requests count (source.sources_for; None: all)."""

    def __init__(self, timeout: float = 5.0, parallel: int = 8, sources: Sources = None) -> None:
        self.timeout = timeout
        self.parallel = parallel
        self.sources = sources

    def snapshot(self, targets: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Counters]]:
        """The counters of every reachable server now (an unreachable one is left out)."""
        jobs = [
            (variant, key, url) for variant, urls in targets.items() for key, url in urls.items()
        ]
        out: dict[str, dict[str, Counters]] = {variant: {} for variant in targets}

        def one(job: tuple[str, str, str]) -> tuple[str, str, Counters | None]:
            variant, key, url = job
            try:
                return variant, key, scrape(url, self.timeout, self.sources)
            except (OSError, ValueError) as error:
                log.warning("cannot scrape %s (%s %s): %s", url, variant, key, error)
                return variant, key, None

        with ThreadPoolExecutor(max(1, min(self.parallel, len(jobs) or 1))) as pool:
            for variant, key, counters in pool.map(one, jobs):
                if counters is not None:
                    out[variant][key] = counters
        return out

    def read(
        self,
        targets: Mapping[str, Mapping[str, str]],
        previous: Mapping[str, Mapping[str, Counters]],
    ) -> Reading:
        """Each variant's metrics since ``previous`` (the snapshot at the interval's start)."""
        now = self.snapshot(targets)
        metrics: dict[str, VariantMetrics | None] = {}
        for variant, current in now.items():
            if not current:
                metrics[variant] = None
                continue
            before = previous.get(variant, {})
            measured = summarize(difference(before, current))
            metrics[variant] = replace(measured, lost=lost(before, current))
        return Reading(metrics=metrics, snapshot=now)

    def measure(self, window: Window) -> Reading:
        return self.read(window.targets(), window.snapshot)

    def begin(self, window: Window) -> dict[str, dict[str, Counters]]:
        return self.snapshot(window.targets())
