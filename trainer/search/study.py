"""The study a search records its trials in: Optuna's, shared by every worker of the search.

With ``search.parallelism`` above 1 the study is a journal file on the model store (a
``file://`` or ``pvc://`` store every worker mounts):
``<store>/<namespace>/<name>/.search/<version>.journal``; Optuna appends each change to it
under a file lock, so workers on different nodes see one study. With one worker it lives in
memory. Each trial carries user attributes: ``worker``, ``params`` (the estimator params as
JSON), ``candidate`` (grid/random: the index in the candidate list), ``scores`` (per fold)
and ``error`` (why a fit failed). A FAIL trial without ``error`` was lost with its Pod.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from model_server import store as store_module
from trainer.errors import BadParamsError
from trainer.search import summary

STUDY_DIR = ".search"
SURPLUS = "surplus"
"""A trial asked for after the study already had nTrials (two workers asked at once): it is
told FAIL at once and never counted."""
POLL_SECONDS = 0.5

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Where:
    """Which search this worker belongs to, and which worker it is."""

    store: str
    namespace: str
    name: str
    version: str
    worker: int = 0


def journal_path(where: Where, workers: int) -> Path | None:
    """The study's journal file; None for a search with one worker (in memory)."""
    if workers == 1:
        return None
    uri = store_module.join(where.store, where.namespace, where.name, STUDY_DIR)
    try:
        local = store_module.local_path(uri)
    except store_module.StoreError as error:
        raise BadParamsError(f"search.parallelism: model store: {error}") from None
    if local is None:
        raise BadParamsError(
            f"search.parallelism: {workers} workers share one study on the model store, which "
            f"must be a shared filesystem (file:// or pvc://), not {where.store}"
        )
    return local / f"{where.version}.journal"


def storage(path: Path | None) -> BaseStorage:
    if path is None:
        return InMemoryStorage()
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    return JournalStorage(backend)


def open_study(
    path: Path | None,
    name: str,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    return optuna.create_study(
        storage=storage(path),
        study_name=name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )


def lost(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and "error" not in trial.user_attrs


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards the search: not lost with its Pod, not surplus."""
    return not lost(trial) and not trial.user_attrs.get(SURPLUS)


def recover(study: optuna.Study, worker: int) -> list[int]:
    """Fail this worker's trials left RUNNING by a Pod that died; their numbers.

    Only one Pod per index runs at a time (the Job replaces a Pod once it has failed), so a
    RUNNING trial of this worker's index belongs to a dead Pod: it is lost, and its candidate
    (grid/random) runs again as a new trial.
    """
    numbers = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") == worker:
            study.tell(trial.number, state=TrialState.FAIL)
            numbers.append(trial.number)
    return numbers


def _worker_key(worker: int) -> str:
    return f"worker-{worker}-done"


def mark_done(study: optuna.Study, worker: int) -> None:
    study.set_user_attr(_worker_key(worker), True)


def is_done(study: optuna.Study, worker: int) -> bool:
    return bool(study.user_attrs.get(_worker_key(worker)))


def wait_for_workers(
    study: optuna.Study, workers: int, report: Callable[[list[int]], None]
) -> None:
    """Block until every worker marked its part done (the Job's deadline bounds the wait)."""
    announced: list[int] | None = None
    while True:
        waiting = [w for w in range(workers) if not is_done(study, w)]
        if not waiting:
            return
        if waiting != announced:
            report(waiting)
            announced = waiting
        time.sleep(POLL_SECONDS)


def trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trials of the search: all but surplus ones (lost ones are there, as failed)."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]


def user_params(trial: FrozenTrial) -> dict[str, Any]:
    return dict(trial.user_attrs.get("params") or {})


_STATES = {
    TrialState.COMPLETE: summary.COMPLETE,
    TrialState.PRUNED: summary.PRUNED,
    TrialState.FAIL: summary.FAILED,
}


def record(trial: FrozenTrial) -> summary.Record:
    start, end = trial.datetime_start, trial.datetime_complete
    scores = [float(s) for s in trial.user_attrs.get("scores") or []]
    return summary.Record(
        number=trial.number,
        state=_STATES.get(trial.state, summary.RUNNING),
        params=user_params(trial),
        score=float(trial.value) if trial.value is not None else None,
        scores=scores,
        candidate=trial.user_attrs.get("candidate"),
        seconds=(end - start).total_seconds() if start and end else None,
        started=start.timestamp() if start else None,
        finished=end.timestamp() if end else None,
        error=trial.user_attrs.get("error") or (None if not lost(trial) else "lost with its Pod"),
    )


def records(study: optuna.Study) -> list[summary.Record]:
    return [record(t) for t in trials(study)]


def started(study: optuna.Study) -> float:
    """When the search started (the first worker's clock), so a restarted Pod keeps the
    timeout of the whole search."""
    value = study.user_attrs.get("started")
    if value is None:
        value = time.time()
        study.set_user_attr("started", value)
    return float(value)
