"""Drift-triggered retraining: when to start a new run of the stable model's TrainingJob. Pure.

Every ``interval`` while no rollout is under way, the caller reads the stable model servers'
highest feature PSI and calls :func:`judge`. ``intervals`` drifting readings in a row
(PSI > ``maxPsi``) start one run, at most one per ``cooldown``; the count then starts again.
No reading (no server reported a PSI yet: too few rows) neither counts nor resets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mlops_operator.api.modeldeployment import Retraining
from mlops_operator.canary.machine import seconds


@dataclass(frozen=True)
class Policy:
    max_psi: float = 0.2
    intervals: int = 3
    interval: float = 60.0
    cooldown: float = 3600.0

    @classmethod
    def from_spec(cls, spec: Retraining) -> Policy:
        return cls(spec.max_psi, spec.intervals, seconds(spec.interval), seconds(spec.cooldown))


@dataclass(frozen=True)
class DriftState:
    checked: float | None = None
    psi: float | None = None
    drifting: int = 0
    triggered: float | None = None
    run: str | None = None
    runs: int = 0
    message: str | None = None


@dataclass(frozen=True)
class Judgement:
    state: DriftState
    retrain: bool
    """Start a run now."""


def due(policy: Policy, state: DriftState, now: float) -> bool:
    return state.checked is None or now - state.checked >= policy.interval


def judge(policy: Policy, state: DriftState, psi: float | None, now: float) -> Judgement:
    """The count after one reading, and whether it starts a run."""
    checked = replace(state, checked=now, psi=psi)
    if psi is None:
        return Judgement(replace(checked, message="no drift reported yet"), False)
    if psi <= policy.max_psi:
        return Judgement(
            replace(checked, drifting=0, message=f"PSI {psi:.3f} <= maxPsi {policy.max_psi:g}"),
            False,
        )
    drifting = state.drifting + 1
    why = (
        f"PSI {psi:.3f} > maxPsi {policy.max_psi:g} for {drifting} interval(s) in a row "
        f"(intervals: {policy.intervals})"
    )
    if drifting < policy.intervals:
        return Judgement(replace(checked, drifting=drifting, message=why), False)
    if state.triggered is not None and now - state.triggered < policy.cooldown:
        left = policy.cooldown - (now - state.triggered)
        held = f"{why}; a run started {now - state.triggered:.0f}s ago, cooldown {left:.0f}s left"
        return Judgement(replace(checked, drifting=drifting, message=held), False)
    started = replace(checked, drifting=0, triggered=now, runs=state.runs + 1, message=why)
    return Judgement(started, True)
