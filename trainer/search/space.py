"""A search's parameter space: listed candidates and ranges, as grid, samples or Optuna's.

Pure: no study, no data. Grid order is scikit-learn's ``ParameterGrid`` and random samples are
its ``ParameterSampler`` with the spec's seed, so every worker of a parallel search computes
the same candidate list and shards it by index.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import stats
from sklearn.model_selection import ParameterGrid, ParameterSampler

from mlops_operator.api.trainingjob import ParamRange, Search


class Suggester(Protocol):
    """What an Optuna trial offers (optuna.Trial has these)."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


@dataclass(frozen=True)
class Space:
    listed: dict[str, list[Any]]
    ranges: dict[str, ParamRange]

    @classmethod
    def of(cls, search: Search) -> Space:
        return cls(listed=dict(search.params), ranges=dict(search.ranges or {}))

    @property
    def names(self) -> list[str]:
        return sorted([*self.listed, *self.ranges])

    def size(self) -> int | None:
        """How many combinations the listed values make; None with a range (infinitely many)."""
        if self.ranges:
            return None
        return math.prod(len(values) for values in self.listed.values())


class _IntLogUniform:
    """Whole numbers drawn log-uniformly in [low, high] (scipy has no discrete log-uniform)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.dist = stats.loguniform(low, high + 1)

    def rvs(self, random_state: Any = None) -> int:
        return min(self.high, int(self.dist.rvs(random_state=random_state)))


def distribution(value: ParamRange) -> Any:
    """The scipy distribution ``ParameterSampler`` draws a range from."""
    if value.type == "int":
        low, high = int(value.low), int(value.high)
        return _IntLogUniform(low, high) if value.log else stats.randint(low, high + 1)
    if value.log:
        return stats.loguniform(value.low, value.high)
    return stats.uniform(value.low, value.high - value.low)


def grid(space: Space) -> list[dict[str, Any]]:
    """Every combination of the listed values, in scikit-learn's order."""
    return [_plain(candidate) for candidate in ParameterGrid(space.listed)]


def sampled(space: Space, n_iter: int, seed: int) -> list[dict[str, Any]]:
    """``n_iter`` candidates (all of them, if the listed values make fewer), seeded."""
    size = space.size()
    count = n_iter if size is None else min(n_iter, size)
    params = {**space.listed, **{n: distribution(r) for n, r in space.ranges.items()}}
    return [_plain(c) for c in ParameterSampler(params, n_iter=count, random_state=seed)]


def encode(value: Any) -> str:
    """A listed value as an Optuna categorical choice (Optuna takes only scalars)."""
    return json.dumps(value, sort_keys=True)


def suggest(trial: Suggester, space: Space) -> dict[str, Any]:
    """The params an Optuna trial chooses from the space (its sampler decides)."""
    chosen: dict[str, Any] = {}
    for name in space.names:
        if name in space.listed:
            choice = trial.suggest_categorical(name, [encode(v) for v in space.listed[name]])
            chosen[name] = json.loads(choice)
            continue
        value = space.ranges[name]
        if value.type == "int":
            chosen[name] = trial.suggest_int(name, int(value.low), int(value.high), log=value.log)
        else:
            chosen[name] = trial.suggest_float(name, value.low, value.high, log=value.log)
    return chosen


def _plain(candidate: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly values: numpy scalars become Python ones."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in sorted(candidate.items())}
