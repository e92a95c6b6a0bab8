"""TrainingJob handlers: thin; the work is in builders/, status/, schedule.py and kube.py.

- create/resume: create the Job (deterministic name; 409 means it exists), then sync status;
- events of the Jobs and Pods the operator labelled: sync the owner's status;
- a timer on scheduled TrainingJobs: create due runs and trim their history.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Mapping
from typing import Any, cast

import kopf
from croniter import CroniterError
from pydantic import ValidationError

from mlops_operator import kube, metrics, schedule
from mlops_operator.api import GROUP, VERSION
from mlops_operator.builders.job import build_job
from mlops_operator.controllers.errors import handling, problem
from mlops_operator.controllers.wakeups import WakeQueue
from mlops_operator.manifests import describe
from mlops_operator.objects import (
    JOB,
    LABEL_MANAGED_BY,
    LABEL_SCHEDULED_BY,
    LABEL_TRAININGJOB,
    MANAGER,
    POD,
    TRAININGJOB,
    job_name,
)
from mlops_operator.settings import get_settings
from mlops_operator.status import trainingjob as tjstatus
from mlops_operator.status.conditions import find

KIND = "TrainingJob"
RESOURCE = (GROUP, VERSION, "trainingjobs")
OWNED: dict[str, Any] = {LABEL_TRAININGJOB: kopf.PRESENT, LABEL_MANAGED_BY: MANAGER}
CLEANUP_REASONS = ("ImagePullFailed", "ContainerConfigError")
"""Failures the Job would retry forever: its Pods are stopped by deleting it."""
MAX_CONFLICTS = 5
SYNC_DELAY = 0.5
"""Seconds from a Job's or Pod's watch event to the status sync (a burst makes one)."""
log = logging.getLogger("kopf.objects")

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _scheduled(body: Mapping[str, Any]) -> bool:
    return bool((body.get("spec") or {}).get("schedule"))


def _finished(body: Mapping[str, Any]) -> bool:
    return (body.get("status") or {}).get("phase") in tjstatus.TERMINAL


def _refused(body: Mapping[str, Any]) -> bool:
    """This generation of the spec was refused (Failed, InvalidSpec)."""
    status = body.get("status") or {}
    failed = find(status.get("conditions"), "Failed") or {}
    return failed.get("reason") == "InvalidSpec" and status.get("observedGeneration") == (
        body.get("metadata") or {}
    ).get("generation")


def sync_status(
    namespace: str,
    name: str,
    logger: kopf.Logger,
    created: Mapping[str, Any] | None = None,
) -> None:
    """Reads the TrainingJob, its Job and Pods; writes the status; posts an Event on change.
    A Job just ``created`` is not read again, nor its Pods (it has none yet).

    Writes only onto the version it read (409 -> read again), so concurrent syncs from Job
    and Pod events never put an older observation over a newer one.
    """
    with _lock(namespace, name):
        for _ in range(MAX_CONFLICTS):
            body = kube.get(TRAININGJOB, namespace, name)
            if body is None or _scheduled(body) or _finished(body):
                return
            job = created or kube.get(JOB, namespace, job_name(name))
            if job is not None and not _owned_by(job, body):
                job = None
            pods = _pods_of(namespace, job) if job is not None and not created else []
            created = None  # a conflict: read everything again
            status, event = tjstatus.compute(body, job, pods, _now())
            if status == (body.get("status") or {}):
                return
            try:
                kube.patch_status(
                    TRAININGJOB, namespace, name, status, body["metadata"]["resourceVersion"]
                )
            except kube.Conflict:
                continue
            _announce(body, status, event, logger)
            if status["phase"] == tjstatus.FAILED and job is not None:
                reason = find(status["conditions"], "Failed") or {}
                if reason.get("reason") in CLEANUP_REASONS:
                    kube.delete(JOB.api_version, JOB.kind, namespace, job["metadata"]["name"])
            return
        raise kopf.TemporaryError(f"TrainingJob {namespace}/{name} kept changing", delay=1)


def _ref(body: Mapping[str, Any]) -> kopf.Body:
    """What kopf's event posting needs (apiVersion, kind, name, namespace, uid)."""
    return kopf.Body(cast(kopf.RawBody, dict(body)))


def _owned_by(child: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = owner["metadata"]["uid"]
    return any(ref.get("uid") == uid for ref in child["metadata"].get("ownerReferences") or [])


def _trainingjobs(child: Mapping[str, Any]) -> list[str]:
    """The TrainingJobs that own a child (an older one of the same name, say)."""
    refs = child["metadata"].get("ownerReferences") or []
    return [ref["name"] for ref in refs if ref.get("kind") == "TrainingJob"]


def _pods_of(namespace: str, job: Mapping[str, Any]) -> list[dict[str, Any]]:
    return kube.list_(
        POD, namespace, f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"
    )


def _announce(
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    event: tjstatus.Event | None,
    logger: kopf.Logger,
) -> None:
    if event is None:
        return
    metrics.TRAININGJOB_TRANSITIONS.labels(phase=status["phase"], reason=event.reason).inc()
    logger.info(f"{status['phase']} ({event.reason}): {event.message}")
    kopf.event(_ref(body), type=event.type, reason=event.reason, message=event.message[:1000])


def _namespace(body: Mapping[str, Any]) -> str:
    return str(body["metadata"]["namespace"])


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
def start(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Creates the training Job (once: the name is derived, 409 means it exists)."""
    if _scheduled(body) or _finished(body):
        return
    with handling(KIND):
        created = None
        if not (body.get("status") or {}).get("startTime"):
            created = _ensure_job(body, logger)
        sync_status(_namespace(body), body["metadata"]["name"], logger, created)


def _reject(body: Mapping[str, Any], message: str, reason: str = "InvalidSpec") -> None:
    """Failed with an Event: no retry fixes it, a new TrainingJob does."""
    status = tjstatus.rejected(body, reason, message, _now())
    kube.patch_status(TRAININGJOB, _namespace(body), body["metadata"]["name"], status)
    kopf.warn(_ref(body), reason=reason, message=message[:1000])


def _ensure_job(body: kopf.Body, logger: kopf.Logger) -> dict[str, Any] | None:
    """Creates the training Job; the Job when this call created it."""
    try:
        manifest = build_job(body, get_settings())
    except ValidationError as error:
        message = f"the spec cannot be trained: {describe(error)}"
        _reject(body, message)
        raise kopf.PermanentError(message) from error
    namespace, name = _namespace(body), manifest["metadata"]["name"]
    try:
        created = kube.create(manifest)
    except kube.KubeError as error:
        if problem(error) is None:
            raise
        message = f"the API server refused the training Job: {error.detail}"
        _reject(body, message)
        raise kopf.PermanentError(message) from error
    if created is not None:
        logger.info(f"created Job {name}")  # the status sync posts the JobCreated Event
        return created
    existing = kube.get(JOB, namespace, name)
    if existing is not None and not _owned_by(existing, body) and not _trainingjobs(existing):
        message = (
            f"Job {name} exists and was not created for this TrainingJob: rename or delete "
            "it, or create the TrainingJob under another name; it was left untouched"
        )
        _reject(body, message, reason="NameClash")
        raise kopf.PermanentError(message)
    if existing is not None and not _owned_by(existing, body):
        raise kopf.TemporaryError(
            f"Job {name} belongs to an older TrainingJob of this name; "
            "waiting for the garbage collector to delete it",
            delay=5,
        )
    return None


class _ObjectLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes messages with the object, as kopf's own logger does in handlers."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{(self.extra or {}).get('ref')}] {msg}", kwargs


def _sync(key: tuple[str, str]) -> None:
    with handling(KIND):
        sync_status(*key, _ObjectLogger(log, {"ref": "/".join(key)}))


SYNCS = WakeQueue("trainingjob-syncs", _sync, delay=SYNC_DELAY, workers=4)
"""TrainingJobs whose Job or Pods changed: one status sync per burst of events."""


@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
async def job_event(body: kopf.Body, **_: Any) -> None:
    """A training Job changed: sync its TrainingJob's status."""
    SYNCS.add((_namespace(body), body["metadata"]["labels"][LABEL_TRAININGJOB]))


@kopf.on.event("", "v1", "pods", labels=OWNED)
async def pod_event(body: kopf.Body, **_: Any) -> None:
    """A training Pod changed (started, waiting on an image, terminated): sync the status."""
    SYNCS.add((_namespace(body), body["metadata"]["labels"][LABEL_TRAININGJOB]))


@kopf.timer(
    *RESOURCE,
    interval=get_settings().schedule_interval_seconds,
    when=lambda spec, **_: bool(spec.get("schedule")),
)
def tick(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A scheduled TrainingJob: create the due run, trim the history, show the runs."""
    namespace, name = _namespace(body), body["metadata"]["name"]
    if _refused(body):
        return  # a new spec starts the schedule again
    with handling(KIND):
        children = kube.list_(TRAININGJOB, namespace, f"{LABEL_SCHEDULED_BY}={name}")
        try:
            step = schedule.plan(body, children, _now())
        except CroniterError as error:
            _reject(body, f"spec.schedule {body['spec']['schedule']!r}: {error}")
            return
        if step.create is not None:
            run = step.create["metadata"]["name"]
            if kube.create(step.create) is not None:
                metrics.SCHEDULED_RUNS.labels(result="created").inc()
                logger.info(f"created run {run}")
                kopf.info(_ref(body), reason="RunCreated", message=f"created run {run}")
        elif step.skipped and step.skipped != (body.get("status") or {}).get("message"):
            metrics.SCHEDULED_RUNS.labels(result="skipped").inc()
            kopf.info(_ref(body), reason="RunWaiting", message=step.skipped)
        for old in step.delete:
            kube.delete(TRAININGJOB.api_version, TRAININGJOB.kind, namespace, old)
            kopf.info(_ref(body), reason="RunDeleted", message=f"deleted run {old} (history limit)")
        if step.status != (body.get("status") or {}):
            kube.patch_status(TRAININGJOB, namespace, name, step.status)
