"""A TrainingJob's search -> status.search: trials and the best so far, from its Pods' results.

Pure. Each search worker's result holds the study's counts when that worker finished, worker
0's (the one with the model) the final ones; until a worker finishes, the planned trials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from mlops_operator.api.trainingjob import Search

Result = Mapping[str, Any]


def _finished(search: Any) -> int:
    return sum(int(search.get(key) or 0) for key in ("completed", "pruned", "failed"))


def compose(
    spec: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    result_of: Callable[[Mapping[str, Any]], Result | None],
) -> dict[str, Any] | None:
    """status.search of a TrainingJob with ``spec``, or None without spec.search."""
    raw = spec.get("search")
    if not isinstance(raw, Mapping):
        return None
    try:
        search = Search.model_validate(raw)
    except ValidationError:
        return None
    reported = [
        r["search"] for r in map(result_of, pods) if r and isinstance(r.get("search"), Mapping)
    ]
    final = [
        r["search"]
        for r in map(result_of, pods)
        if r and isinstance(r.get("search"), Mapping) and isinstance(r.get("model"), Mapping)
    ]
    if final:
        return dict(final[0])
    if reported:
        return dict(max(reported, key=_finished))
    planned = search.planned_trials()
    return {
        "strategy": search.strategy,
        "progress": f"0/{planned}",
        "planned": planned,
        "completed": 0,
        "pruned": 0,
        "failed": 0,
        "workers": search.parallelism,
        "workersDone": 0,
    }
