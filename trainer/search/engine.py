"""A worker's part of a search over trials: its shard of grid/random candidates, or bayesian
trials until the study has nTrials. Each trial is asked from the shared study, evaluated
fold by fold and told back, with one progress line."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from trainer.errors import BadParamsError, TrainingFailedError
from trainer.search import study as studies
from trainer.search import summary
from trainer.search.evaluation import Evaluator, Prune, Pruned
from trainer.search.sharding import shard
from trainer.search.space import Space, suggest

Report = Callable[..., None]


@dataclass
class Part:
    study: optuna.Study
    worker: int
    workers: int
    evaluate: Evaluator
    report: Report
    scoring: str
    planned: int | None
    errors: list[TrainingFailedError | BadParamsError]

    def finished(self) -> int:
        return sum(
            t.state.is_finished() and studies.counted(t)
            for t in self.study.get_trials(deepcopy=False)
        )


def _run_trial(
    part: Part, trial: optuna.Trial, params: dict[str, Any], prune: Prune | None
) -> None:
    trial.set_user_attr("params", params)
    state, value = TrialState.COMPLETE, None
    try:
        scores = part.evaluate(params, prune)
    except Pruned as pruned:
        trial.set_user_attr("scores", pruned.scores)
        state = TrialState.PRUNED
    except (BadParamsError, TrainingFailedError) as error:
        trial.set_user_attr("error", error.message)
        part.errors.append(error)
        state = TrialState.FAIL
    else:
        trial.set_user_attr("scores", scores)
        value = sum(scores) / len(scores)
        if math.isnan(value):
            trial.set_user_attr("error", "a fold's score is NaN")
            state, value = TrialState.FAIL, None
    part.study.tell(trial, value, state=state)
    done = studies.record(part.study.get_trials(deepcopy=False)[trial.number])
    line = summary.describe(
        done, part.finished(), part.planned, part.scoring, summary.best(studies.records(part.study))
    )
    part.report(
        line,
        trial=trial.number,
        state=done.state,
        score=done.score,
        seconds=done.seconds,
        worker=part.worker,
    )


def run_listed(part: Part, candidates: list[dict[str, Any]]) -> None:
    """Evaluate this worker's shard of the candidates, skipping those already finished
    (by this worker's earlier Pod): a retried Pod never runs a finished trial again."""
    finished = {
        t.user_attrs.get("candidate")
        for t in studies.trials(part.study)
        if t.state.is_finished() and studies.counted(t)
    }
    for index in shard(len(candidates), part.worker, part.workers):
        if index in finished:
            continue
        trial = part.study.ask()
        trial.set_user_attr("worker", part.worker)
        trial.set_user_attr("candidate", index)
        _run_trial(part, trial, candidates[index], None)


def run_bayesian(part: Part, space: Space, n_trials: int, deadline: float | None) -> None:
    """Ask the study's sampler for trials until it holds ``n_trials`` (across workers) or
    the deadline passes; a trial whose running fold score falls behind may be pruned."""
    while deadline is None or time.time() < deadline:
        if sum(studies.counted(t) for t in studies.trials(part.study)) >= n_trials:
            return
        trial = part.study.ask()
        trial.set_user_attr("worker", part.worker)
        earlier = [t for t in part.study.get_trials(deepcopy=False) if t.number < trial.number]
        if sum(studies.counted(t) for t in earlier) >= n_trials:
            trial.set_user_attr(studies.SURPLUS, True)
            part.study.tell(trial, state=TrialState.FAIL)
            return
        params = suggest(trial, space)

        def prune(fold: int, value: float, trial: optuna.Trial = trial) -> bool:
            trial.report(value, fold)
            return trial.should_prune()

        _run_trial(part, trial, params, prune)
