"""A search's trials -> its status and its best trial. Pure: records in, numbers out.

The best trial has the highest mean cross-validation score; ties go to the lowest candidate
index (grid and random: what ``GridSearchCV`` picks, whatever the number of workers) or the
lowest trial number (bayesian).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_operator.api.trainingjob import SearchStatus

COMPLETE, PRUNED, FAILED, RUNNING = "complete", "pruned", "failed", "running"


@dataclass(frozen=True)
class Record:
    """One trial as the study holds it."""

    number: int
    state: str
    params: dict[str, Any]
    score: float | None = None
    scores: list[float] = field(default_factory=list)
    candidate: int | None = None
    seconds: float | None = None
    started: float | None = None
    """POSIX time the trial started (None while waiting)."""
    finished: float | None = None
    error: str | None = None


def best(records: Sequence[Record]) -> Record | None:
    complete = [r for r in records if r.state == COMPLETE and r.score is not None]
    if not complete:
        return None

    def order(r: Record) -> tuple[float, int]:
        tie = r.candidate if r.candidate is not None else r.number
        return (-float(r.score or 0.0), tie)

    return min(complete, key=order)


def status(
    records: Sequence[Record],
    *,
    strategy: str,
    planned: int | None,
    workers: int,
    workers_done: int | None = None,
) -> SearchStatus:
    finished = [r for r in records if r.state in (COMPLETE, PRUNED, FAILED)]
    timed = [r.seconds for r in finished if r.seconds is not None and r.state != FAILED]
    starts = [r.started for r in records if r.started is not None]
    ends = [r.finished for r in finished if r.finished is not None]
    top = best(records)
    done = sum(r.state in (COMPLETE, PRUNED) for r in records)
    return SearchStatus(
        strategy=strategy,
        progress=f"{done}/{planned}" if planned is not None else str(done),
        planned=planned,
        completed=sum(r.state == COMPLETE for r in records),
        pruned=sum(r.state == PRUNED for r in records),
        failed=sum(r.state == FAILED for r in records),
        workers=workers,
        workers_done=workers_done,
        best_trial=top.number if top else None,
        best_score=round(top.score, 6) if top and top.score is not None else None,
        best_params=top.params if top else None,
        seconds_per_trial=round(sum(timed) / len(timed), 4) if timed else None,
        seconds=round(max(ends) - min(starts), 3) if starts and ends else None,
    )


def describe(
    record: Record, position: int, planned: int | None, scoring: str, top: Record | None
) -> str:
    """The progress line of a finished trial, the ``position``-th to finish."""
    of = f"/{planned}" if planned is not None else ""
    took = f" in {record.seconds:.2f}s" if record.seconds is not None else ""
    if record.state == COMPLETE:
        what = f"{scoring} {record.score:.4f} ± {_std(record.scores):.4f}"
    elif record.state == PRUNED:
        what = f"pruned after {len(record.scores)} folds"
    else:
        what = f"failed: {record.error}"
    lead = f"; best {top.score:.4f} (trial {top.number})" if top and top.score is not None else ""
    return f"trial {position}{of} (#{record.number}) {what}{took} {record.params}{lead}"


def _std(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return float((sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5)
