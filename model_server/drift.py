"""Input drift: served-input histograms per feature against the training statistics.

Each feature keeps an exponentially decaying histogram of the values served (effective window:
``window`` rows) over the bins of its training statistics in metadata.json ``featureStats``:
numeric features over ``binEdges`` plus a missing-value bin, categorical ones per training
category plus "other" and missing. The Population Stability Index compares the two:
``PSI = sum((served - train) * ln(served / train))`` over the bins, with a small floor on each
fraction. Rules of thumb: below 0.1 stable, 0.1 to 0.25 moderate shift, above 0.25 drift.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from model_server.artifact import CategoricalStats, Metadata, NumericStats

EPSILON = 1e-4


def psi(expected: np.ndarray[Any, Any], actual: np.ndarray[Any, Any]) -> float:
    """PSI between two distributions over the same bins (fractions; zeros are floored)."""
    e = np.maximum(expected / max(expected.sum(), EPSILON), EPSILON)
    a = np.maximum(actual / max(actual.sum(), EPSILON), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


class _Feature:
    def __init__(self, name: str, stats: NumericStats | CategoricalStats) -> None:
        self.name = name
        if isinstance(stats, NumericStats):
            self.edges: np.ndarray[Any, Any] | None = np.asarray(stats.bin_edges, dtype=np.float64)
            self.categories: dict[str, int] = {}
            fractions = list(stats.fractions)
            if len(fractions) != len(stats.bin_edges) + 1:
                raise ValueError(
                    f"featureStats[{name!r}]: {len(fractions)} fractions for "
                    f"{len(stats.bin_edges)} edges (want edges + 1)"
                )
            other = 0.0
        else:
            self.edges = None
            self.categories = {str(c): i for i, c in enumerate(stats.fractions)}
            fractions = list(stats.fractions.values())
            other = 0.0
            fractions.append(other)  # the "other" bin: categories never seen in training
        present = 1.0 - stats.missing
        self.expected = np.asarray([f * present for f in fractions] + [stats.missing])
        self.counts = np.zeros_like(self.expected)

    def histogram(self, column: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        bins = len(self.expected)
        if self.edges is not None:
            values = np.asarray(column, dtype=np.float64)
            missing = np.isnan(values)
            index = np.searchsorted(self.edges, values[~missing], side="right")
            counts = np.bincount(index, minlength=bins - 1).astype(np.float64)
            return np.append(counts[: bins - 1], float(missing.sum()))
        counts = np.zeros(bins)
        other = bins - 2
        missing = pd.isna(column)
        counts[-1] = float(missing.sum())
        values, frequencies = np.unique(
            np.asarray(column[~missing]).astype(str), return_counts=True
        )
        for value, frequency in zip(values.tolist(), frequencies.tolist(), strict=True):
            counts[self.categories.get(value, other)] += frequency
        return counts


class DriftMonitor:
    """Per-feature served-input statistics; thread-safe (updated from the predict thread)."""

    def __init__(
        self, metadata: Metadata, feature_names: list[str], window: int, min_rows: int = 100
    ) -> None:
        self.decay = 1.0 - 1.0 / window
        self.window = window
        self.min_rows = min_rows
        """Fewer rows than this say nothing: a handful of rows gives any PSI at all."""
        self.features: list[_Feature | None] = []
        for name in feature_names:
            stats = metadata.feature_stats.get(name)
            self.features.append(_Feature(name, stats) if stats is not None else None)
        self.rows = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return any(f is not None for f in self.features)

    def observe(self, columns: list[np.ndarray[Any, Any]]) -> None:
        if not columns:
            return
        rows = len(columns[0])
        factor = self.decay**rows
        histograms = [(f, f.histogram(c)) for f, c in zip(self.features, columns, strict=True) if f]
        with self._lock:
            self.rows += rows
            for feature, histogram in histograms:
                feature.counts = feature.counts * factor + histogram

    @property
    def effective_rows(self) -> int:
        """How many recent rows the served statistics stand for (at most the window)."""
        return min(self.rows, self.window)

    def psi(self) -> dict[str, float]:
        """PSI per feature with statistics, once ``min_rows`` rows were served."""
        with self._lock:
            if self.rows < self.min_rows:
                return {}
            return {f.name: psi(f.expected, f.counts) for f in self.features if f is not None}
