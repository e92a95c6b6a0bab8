"""The hand-off after a promotion: the stable variant takes the canary's model without losing a
request or a feedback. Pure (stage + what was seen + clock -> next stage).

A model server remembers the predictions it made (by request id) for their feedback, so a
Pod that goes takes those with it, and a Pod rolled under traffic answers some requests while
it goes. Promoting by rolling the stable Deployment at once loses both (the soak measured it on
the real node: feedback 404s for ids the old stable Pods or the canary predicted, a 502 from a
router still sending to a deleted canary). The hand-off is Flagger's promotion ("Promoting",
then "Finalising") with the builtin router's feedback pool:

1. ``shift``: every prediction goes to the canary (weight 100); the stable servers keep their
   model and still get the feedback for what they predicted. Done when the router runs this
   split everywhere (no older router Pod left).
2. ``roll``: the stable Deployment rolls to the canary's model, serving no prediction. Done
   when each stable server runs it and is ready.
3. ``switch``: every prediction goes to the stable variant; the canary's servers take feedback
   only (the router's feedback pool). Done ``FEEDBACK_GRACE_SECONDS`` after the router runs
   this everywhere.
4. ``retire``: the router drops the canary; its Deployment and Service go once no router Pod
   still names them. Then the hand-off is over.

A promotion whose canary servers are not all ready (the rollback window promotes at once,
before they start) is handed off at once, as before: routing to them would fail.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from mlops_operator.canary.resolve import ServedModel

Stage = Literal["shift", "roll", "switch", "retire"]
STAGES: tuple[Stage, ...] = ("shift", "roll", "switch", "retire")
FEEDBACK_GRACE_SECONDS = 10.0
"""How long the replaced canary's servers still take feedback once no prediction reaches them
(the local runner keeps its retired servers as long: local/rollout.py)."""


@dataclass(frozen=True)
class Handoff:
    stage: Stage
    since: float
    """When this stage began (epoch seconds)."""
    previous: ServedModel
    """The model the stable variant served before the promotion (kept until ``roll``)."""
    settled: float | None = None
    """``switch``: when the router was first seen running it everywhere."""


@dataclass(frozen=True)
class Seen:
    """What the pass saw of the children it applied for the current stage."""

    route_settled: bool
    """Every router Pod runs the newest configuration and no older one is still terminating
    (always True for providers without router Pods)."""
    stable_rolled_out: bool
    """Every stable model server runs the newest template and is ready."""


@dataclass(frozen=True)
class Serving:
    """What the children serve in a stage."""

    stable_previous: bool
    """The stable Deployment still runs the model it served before the promotion."""
    canary_weight: int | None
    """The canary's live weight (None: the canary gets no prediction)."""
    canary_retired: bool
    """The canary's servers stay and take feedback only."""


SERVING: dict[Stage, Serving] = {
    "shift": Serving(stable_previous=True, canary_weight=100, canary_retired=False),
    "roll": Serving(stable_previous=False, canary_weight=100, canary_retired=False),
    "switch": Serving(stable_previous=False, canary_weight=None, canary_retired=True),
    "retire": Serving(stable_previous=False, canary_weight=None, canary_retired=False),
}

MESSAGES: dict[Stage, str] = {
    "shift": "promotion: every prediction goes to the canary while the router rolls",
    "roll": "promotion: the stable servers roll to the promoted model (the canary serves)",
    "switch": "promotion: the stable servers serve the promoted model; the canary's take "
    "feedback only",
    "retire": "promotion: the canary's servers go once no router Pod names them",
}


def begin(previous: ServedModel, now: float, canary_ready: bool) -> Handoff | None:
    """The hand-off a promotion starts (None: the children switch at once)."""
    return Handoff("shift", now, previous) if canary_ready else None


def advance(handoff: Handoff, seen: Seen, now: float) -> Handoff | None:
    """The stage after this pass's observation; None once the hand-off is over."""
    stage = handoff.stage
    if stage == "shift" and seen.route_settled:
        return Handoff("roll", now, handoff.previous)
    if stage == "roll" and seen.stable_rolled_out and seen.route_settled:
        return Handoff("switch", now, handoff.previous)
    if stage == "switch" and seen.route_settled:
        settled = handoff.settled if handoff.settled is not None else now
        if now - settled >= FEEDBACK_GRACE_SECONDS:
            return Handoff("retire", now, handoff.previous)
        return replace(handoff, settled=settled)
    if stage == "retire" and seen.route_settled:
        return None
    return handoff
