"""Which model a variant serves: a uri with its digest, a TrainingJob's status.model, or the
newest Succeeded TrainingJob matching a selector (continuous delivery). Pure: the caller
passes the TrainingJob objects it read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_operator.api.common import ModelRef
from mlops_operator.objects import selector_string


@dataclass(frozen=True)
class ServedModel:
    """A resolved model: what a variant's servers load."""

    uri: str
    digest: str
    name: str | None = None
    """The TrainingJob name or uri it came from, for people."""


@dataclass(frozen=True)
class Waiting:
    """The model is not available yet, and why."""

    reason: str
    message: str


def from_trainingjob(name: str, body: Mapping[str, Any] | None) -> ServedModel | Waiting:
    """A TrainingJob's published model; Waiting while it is not Succeeded."""
    if body is None:
        return Waiting("TrainingJobNotFound", f"TrainingJob {name} does not exist")
    status = body.get("status") or {}
    phase = status.get("phase") or "Pending"
    model = status.get("model") or {}
    if phase != "Succeeded" or not model.get("uri") or not model.get("digest"):
        return Waiting("WaitingForTrainingJob", f"TrainingJob {name} is {phase}, not Succeeded")
    return ServedModel(uri=str(model["uri"]), digest=str(model["digest"]), name=name)


def _finished_at(body: Mapping[str, Any]) -> tuple[str, str, str]:
    status = body.get("status") or {}
    meta = body.get("metadata") or {}
    return (
        str(status.get("completionTime") or ""),
        str(meta.get("creationTimestamp") or ""),
        str(meta.get("name") or ""),
    )


def newest(bodies: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest Succeeded TrainingJob with a model (Succeeded means its gate passed)."""
    done = [
        body
        for body in bodies
        if (body.get("status") or {}).get("phase") == "Succeeded"
        and ((body.get("status") or {}).get("model") or {}).get("digest")
    ]
    return max(done, key=_finished_at, default=None)


def resolve(
    ref: ModelRef,
    trainingjob: Mapping[str, Any] | None = None,
    selected: Iterable[Mapping[str, Any]] = (),
) -> ServedModel | Waiting:
    """``trainingjob``: the body named by ref.training_job; ``selected``: the TrainingJobs
    matching ref.selector."""
    if ref.uri is not None and ref.digest is not None:
        return ServedModel(uri=ref.uri, digest=ref.digest, name=ref.uri)
    if ref.training_job is not None:
        return from_trainingjob(ref.training_job, trainingjob)
    if ref.selector is not None:
        found = newest(selected)
        if found is None:
            labels = selector_string(ref.selector.match_labels)
            return Waiting("WaitingForTrainingJob", f"no Succeeded TrainingJob with {labels}")
        return from_trainingjob(str(found["metadata"]["name"]), found)
    return Waiting("InvalidModel", "model: set exactly one of trainingJob, uri or selector")
