"""Which candidates a worker of a parallel search evaluates, and with which sampler seed.

Pure and deterministic: worker ``i`` of ``n`` takes candidates ``i, i + n, i + 2n, ...`` of
the list every worker computes alike, so the shards are disjoint and cover the list.
"""

from __future__ import annotations


def shard(candidates: int, worker: int, workers: int) -> range:
    """The candidate indices of ``worker`` (0-based) among ``workers``."""
    if workers < 1 or not 0 <= worker < workers:
        raise ValueError(f"worker {worker} of {workers}: the index must be in [0, {workers})")
    return range(worker, candidates, workers)


def worker_seed(seed: int, worker: int) -> int:
    """The sampler seed of a bayesian worker: distinct per worker, so that their first
    (random) trials differ, and fixed, so that a run with one worker repeats exactly."""
    return seed + worker
