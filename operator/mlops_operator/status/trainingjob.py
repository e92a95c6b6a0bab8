"""A TrainingJob's Job and Pods -> its status: phase, conditions, result, and what to tell.

Pure: the controller passes what it read from the API (camelCase dicts, as the API returns
them) and the time, and writes back what this returns. Finished is final: a Succeeded or
Failed status is never recomputed, so a Job deleted later (ttlSecondsAfterFinished) changes
nothing.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_operator.api.workload import MODEL_STORE_FAULTS, ExitCode
from mlops_operator.status import search as search_status
from mlops_operator.status.conditions import condition, find, rfc3339

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL = (SUCCEEDED, FAILED)
CONDITION_TYPES = ("Running", "Succeeded", "Failed")

IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError")
MISSING_CLAIM = re.compile(r'persistentvolumeclaim "([^"]+)" not found')
"""The scheduler's words for a Pod whose claim does not exist."""
HEADLINE_METRICS = ("accuracy", "r2", "f1_macro", "roc_auc", "mse", "mae")


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the TrainingJob."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """Where the training stands: a phase, a reason (CamelCase), a message for a person."""

    phase: str
    reason: str
    message: str
    result: Mapping[str, Any] = field(default_factory=dict)


def _time(value: datetime.datetime) -> str:
    return rfc3339(value)


def _created(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("creationTimestamp") or "")


def _job_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    found = find(job.get("status", {}).get("conditions"), type_)
    return found if found is not None and found.get("status") == "True" else None


def _container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    fallback = statuses[0] if statuses else {}
    return next((s for s in statuses if s.get("name") == "trainer"), fallback)


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    state = _container_status(pod).get("state") or {}
    terminated = state.get("terminated")
    return terminated if isinstance(terminated, Mapping) else None


def _waiting(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    state = _container_status(pod).get("state") or {}
    waiting = state.get("waiting")
    return waiting if isinstance(waiting, Mapping) else None


def parse_result(message: str | None) -> dict[str, Any] | None:
    """The trainer's result JSON from a termination message; None when it is not one."""
    if not message:
        return None
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def score_of(result: Mapping[str, Any]) -> str | None:
    """The headline metric, e.g. accuracy=0.967."""
    if isinstance(result.get("score"), str):
        return str(result["score"])
    metrics = result.get("metrics") or {}
    for name in HEADLINE_METRICS:
        value = metrics.get(name)
        if isinstance(value, int | float):
            return f"{name}={value:.4g}"
    return None


def _tail(text: str | None, limit: int = 300) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else "..." + text[-limit:]


def _memory_limit(pod: Mapping[str, Any]) -> str:
    for container in pod.get("spec", {}).get("containers") or []:
        limit = (container.get("resources") or {}).get("limits", {}).get("memory")
        if limit:
            return f" (limit {limit})"
    return ""


def _gate_message(result: Mapping[str, Any]) -> str:
    if result.get("message"):
        return str(result["message"])
    gate = result.get("gate")
    failures = gate.get("failures") if isinstance(gate, Mapping) else None
    if failures:
        return "quality gate failed: " + "; ".join(str(f) for f in failures)
    return "the model did not meet spec.qualityGate"


def _failed_pod_outcome(pod: Mapping[str, Any]) -> Outcome | None:
    """Why a failed training Pod failed, when its container says so."""
    terminated = _terminated(pod)
    if terminated is None:
        return None
    code = terminated.get("exitCode")
    result = parse_result(terminated.get("message")) or {}
    if terminated.get("reason") == "OOMKilled" or (code == 137 and "OOM" in str(terminated)):
        return Outcome(
            FAILED,
            "OOMKilled",
            "the training container ran out of memory"
            f"{_memory_limit(pod)}: raise spec.resources.limits.memory, or train on less data",
        )
    if code == ExitCode.QUALITY_GATE_FAILED or result.get("reason") == "QualityGateFailed":
        return Outcome(FAILED, "QualityGateFailed", _gate_message(result), result)
    if result.get("reason"):
        message = str(result.get("message") or result["reason"])
        return Outcome(FAILED, str(result["reason"]), f"{message} (exit code {code})", result)
    logs = _tail(terminated.get("message"))
    detail = f": {logs}" if logs else ""
    return Outcome(FAILED, "TrainingFailed", f"mlops train exited with code {code}{detail}")


def _store_fault(pod: Mapping[str, Any] | None) -> bool:
    """The Pod failed because the model store could not take the artifact."""
    terminated = _terminated(pod) if pod is not None else None
    return terminated is not None and terminated.get("exitCode") in MODEL_STORE_FAULTS


def _stuck_pod_outcome(pod: Mapping[str, Any]) -> Outcome | None:
    """A Pod that will never start by itself (bad image, missing Secret)."""
    waiting = _waiting(pod)
    if waiting is None:
        return None
    reason, message = str(waiting.get("reason") or ""), _tail(waiting.get("message"))
    if reason in IMAGE_PULL_REASONS:
        image = _container_status(pod).get("image") or "the image"
        return Outcome(
            FAILED,
            "ImagePullFailed",
            f"cannot pull {image} ({reason}: {message}); check the operator's image setting "
            "(MLOPS_IMAGE) and the registry credentials",
        )
    if reason in CONFIG_REASONS:
        return Outcome(
            FAILED,
            "ContainerConfigError",
            f"the training container cannot be created ({reason}: {message}); "
            "check that spec.output.secretRef names an existing Secret",
        )
    return None


def _latest(
    pods: Sequence[Mapping[str, Any]], phase: str | None = None
) -> Mapping[str, Any] | None:
    chosen = [p for p in pods if phase is None or p.get("status", {}).get("phase") == phase]
    return max(chosen, key=_created) if chosen else None


def observe(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> Outcome:
    """What the Job and its Pods say about the training."""
    if job is None:
        return Outcome(PENDING, "Creating", "creating the training Job")
    if _job_condition(job, "Complete") or _job_condition(job, "SuccessCriteriaMet"):
        return _succeeded(job, pods)
    failed = _job_condition(job, "Failed") or _job_condition(job, "FailureTarget")
    if failed:
        return _failed(job, failed, pods)
    return _in_progress(job, pods)


def pod_result(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The trainer's result in a terminated Pod's message; None before it terminated."""
    terminated = _terminated(pod)
    return parse_result(terminated.get("message") if terminated else None)


def _published(pods: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The result of the Pod that published (worker 0 of a parallel search)."""
    done = sorted(
        (p for p in pods if p.get("status", {}).get("phase") == "Succeeded"),
        key=_created,
        reverse=True,
    )
    results = [r for r in map(pod_result, done) if r is not None]
    with_model = [r for r in results if isinstance(r.get("model"), Mapping)]
    chosen = with_model or results
    return chosen[0] if chosen else None


def _succeeded(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Outcome:
    result = _published(pods)
    if result is None or not isinstance(result.get("model"), Mapping):
        return Outcome(
            FAILED,
            "ResultMissing",
            f"Job {job['metadata']['name']} completed, but its Pod's termination message held "
            "no result (was the Pod deleted, or is the image's `mlops train` too old?)",
        )
    model = result["model"]
    return Outcome(
        SUCCEEDED,
        "Completed",
        f"trained {score_of(result) or 'a model'}; published version "
        f"{model.get('version')} at {model.get('uri')}",
        result,
    )


def _failed(
    job: Mapping[str, Any], failed: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> Outcome:
    reason = str(failed.get("reason") or "")
    pod_outcome = _failed_pod_outcome(p) if (p := _latest(pods, "Failed")) else None
    if reason == "DeadlineExceeded":
        limit = job.get("spec", {}).get("activeDeadlineSeconds")
        return Outcome(
            FAILED,
            "DeadlineExceeded",
            f"the training ran longer than spec.activeDeadlineSeconds ({limit}s) and was "
            "stopped: raise the deadline, or make the search smaller",
        )
    if pod_outcome is not None and pod_outcome.reason in ("OOMKilled", "QualityGateFailed"):
        return pod_outcome
    if reason == "BackoffLimitExceeded":
        limit = job.get("spec", {}).get("backoffLimit")
        times = f"the training failed {int(limit or 0) + 1} times (spec.backoffLimit {limit})"
        if pod_outcome is not None and _store_fault(p):
            return Outcome(
                FAILED, pod_outcome.reason, f"{pod_outcome.message}; {times}", pod_outcome.result
            )
        last = f"; the last attempt: {pod_outcome.message}" if pod_outcome else ""
        return Outcome(
            FAILED,
            "BackoffLimitExceeded",
            f"{times}{last}",
            pod_outcome.result if pod_outcome else {},
        )
    if pod_outcome is not None:
        return pod_outcome
    return Outcome(FAILED, reason or "JobFailed", _tail(failed.get("message")) or reason)


def _running(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], running: Mapping[str, Any]
) -> Outcome:
    workers = int(job.get("spec", {}).get("completions") or 1)
    if job.get("spec", {}).get("completionMode") != "Indexed" or workers == 1:
        return Outcome(RUNNING, "Training", f"Pod {running['metadata']['name']} is training")
    live = sum(p.get("status", {}).get("phase") == "Running" for p in pods)
    done = int(job.get("status", {}).get("succeeded") or 0)
    return Outcome(
        RUNNING, "Searching", f"search: {live} worker Pods running, {done} of {workers} finished"
    )


def _in_progress(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Outcome:
    latest = _latest(pods)
    if latest is not None and (stuck := _stuck_pod_outcome(latest)) is not None:
        return stuck
    running = _latest(pods, "Running")
    if running is not None:
        return _running(job, pods, running)
    if latest is not None:
        pod = latest["metadata"]["name"]
        scheduled = find(latest.get("status", {}).get("conditions"), "PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False":
            claim = MISSING_CLAIM.search(str(scheduled.get("message") or ""))
            if claim is not None:
                namespace = latest["metadata"].get("namespace", "default")
                return Outcome(
                    PENDING,
                    "ModelStoreClaimMissing",
                    f"Pod {pod} cannot start: the claim {claim.group(1)} does not exist in "
                    f"namespace {namespace} (the Helm chart creates its model-store claim in "
                    "its own namespace and in operator.watchNamespaces): create the claim "
                    "here, add this namespace to the chart's operator.watchNamespaces, or set "
                    "spec.output.uri (docs/install.md#helm)",
                )
            return Outcome(
                PENDING,
                str(scheduled.get("reason") or "Unschedulable"),
                f"Pod {pod} cannot be scheduled: {_tail(scheduled.get('message'))}",
            )
        waiting = _waiting(latest)
        if waiting is not None and waiting.get("reason"):
            reason = str(waiting["reason"])
            return Outcome(PENDING, reason, f"Pod {pod} is waiting: {reason}")
    name = job["metadata"]["name"]
    return Outcome(PENDING, "JobCreated", f"Job {name} created; waiting for its Pod")


def attempts(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> int:
    """Training Pods started so far."""
    if job is None:
        return 0
    status = job.get("status", {})
    counted = sum(int(status.get(key) or 0) for key in ("active", "succeeded", "failed"))
    return max(counted, len(pods))


def _conditions(
    outcome: Outcome, generation: int | None, previous: Any, now: datetime.datetime
) -> list[dict[str, Any]]:
    phase, reason, message = outcome.phase, outcome.reason, outcome.message
    return [
        condition(
            "Running",
            phase == RUNNING,
            reason=reason,
            message=message,
            generation=generation,
            previous=previous,
            now=now,
        ),
        condition(
            "Succeeded",
            phase == SUCCEEDED,
            reason=reason,
            message=message if phase in TERMINAL else "the training has not finished",
            generation=generation,
            previous=previous,
            now=now,
        ),
        condition(
            "Failed",
            phase == FAILED,
            reason=reason if phase != SUCCEEDED else "Completed",
            message=message if phase == FAILED else "",
            generation=generation,
            previous=previous,
            now=now,
        ),
    ]


def _finish_time(job: Mapping[str, Any] | None, now: datetime.datetime) -> str:
    if job is not None:
        status = job.get("status", {})
        if status.get("completionTime"):
            return str(status["completionTime"])
        for type_ in ("Failed", "Complete"):
            found = _job_condition(job, type_)
            if found is not None and found.get("lastTransitionTime"):
                return str(found["lastTransitionTime"])
    return _time(now)


def compute(
    body: Mapping[str, Any],
    job: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    now: datetime.datetime,
) -> tuple[dict[str, Any], Event | None]:
    """The status of the TrainingJob ``body``, and the Event to post when its state changed.

    A finished TrainingJob keeps its status (returned unchanged, with no Event).
    """
    old: Mapping[str, Any] = body.get("status") or {}
    if old.get("phase") in TERMINAL:
        return dict(old), None
    generation = body.get("metadata", {}).get("generation")
    outcome = observe(job, pods)
    if job is None and old.get("startTime"):
        outcome = Outcome(
            FAILED,
            "JobDeleted",
            "the training Job was deleted before it finished; create a new TrainingJob to retrain",
        )
    status: dict[str, Any] = {
        "phase": outcome.phase,
        "conditions": _conditions(outcome, generation, old.get("conditions"), now),
        "attempts": attempts(job, pods),
        "message": outcome.message,
        "observedGeneration": generation,
    }
    if job is not None:
        job_status = job.get("status", {})
        status["startTime"] = old.get("startTime") or job_status.get("startTime") or _created(job)
    elif old.get("startTime"):
        status["startTime"] = old["startTime"]
    if outcome.phase in TERMINAL:
        status["completionTime"] = _finish_time(job, now)
    if (searched := search_status.compose(body.get("spec") or {}, pods, pod_result)) is not None:
        status["search"] = searched
    result = outcome.result
    if isinstance(result.get("search"), Mapping):
        status["search"] = dict(result["search"])
    if result.get("metrics"):
        status["metrics"] = dict(result["metrics"])
    if outcome.phase == SUCCEEDED:
        model = result["model"]
        status["model"] = {
            "uri": str(model.get("uri")),
            "digest": str(model.get("digest")),
            "version": str(model.get("version")),
        }
        if score := score_of(result):
            status["score"] = score
        if isinstance(result.get("onnx"), Mapping):
            status["onnx"] = dict(result["onnx"])
    status.update(_trust(result))
    event = None
    if (old.get("phase"), _reason(old)) != (outcome.phase, outcome.reason):
        kind = "Warning" if outcome.phase == FAILED else "Normal"
        event = Event(kind, outcome.reason, outcome.message)
    return status, event


def _trust(result: Mapping[str, Any]) -> dict[str, Any]:
    """The run's privacy budget and findings, its MLflow run, its report."""
    out: dict[str, Any] = {
        key: dict(result[key])
        for key in ("privacy", "tracking")
        if isinstance(result.get(key), Mapping)
    }
    if isinstance(result.get("report"), str):
        out["report"] = result["report"]
    return out


def rejected(
    body: Mapping[str, Any], reason: str, message: str, now: datetime.datetime
) -> dict[str, Any]:
    """The status of a TrainingJob the operator will not train (no Job is created)."""
    generation = body.get("metadata", {}).get("generation")
    outcome = Outcome(FAILED, reason, message)
    old: Mapping[str, Any] = body.get("status") or {}
    return {
        "phase": FAILED,
        "conditions": _conditions(outcome, generation, old.get("conditions"), now),
        "attempts": 0,
        "message": message,
        "observedGeneration": generation,
        "completionTime": _time(now),
    }


def _reason(status: Mapping[str, Any]) -> str | None:
    running = find(status.get("conditions"), "Running")
    failed = find(status.get("conditions"), "Failed")
    if failed is not None and failed.get("status") == "True":
        return str(failed.get("reason"))
    return str(running.get("reason")) if running is not None else None
