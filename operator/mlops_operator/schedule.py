"""Scheduled TrainingJobs: when a run is due, which runs to keep, what the parent shows.

Pure: the timer passes the parent, its runs (child TrainingJobs) and the time; this returns a
:class:`Plan` to carry out. Cron times are UTC. Each run is named after its cron time, so a
restarted operator that plans the same run again collides with it (409) instead of
creating a second one.

Like a CronJob without startingDeadlineSeconds: a run that is due while another one runs
(concurrencyPolicy Forbid) starts when that one finishes, once; older missed times are
not made up for.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from mlops_operator.objects import (
    ANNOTATION_SCHEDULED_TIME,
    LABEL_SCHEDULED_BY,
    owner_reference,
    run_name,
)
from mlops_operator.status.conditions import condition, parse_time, rfc3339
from mlops_operator.status.trainingjob import FAILED, PENDING, SUCCEEDED, TERMINAL

SCHEDULE_FIELDS = (
    "schedule",
    "concurrencyPolicy",
    "successfulRunsHistoryLimit",
    "failedRunsHistoryLimit",
)


@dataclass(frozen=True)
class Plan:
    """What one tick of the schedule does."""

    create: dict[str, Any] | None
    """The run to create, if one is due and may start."""
    delete: list[str]
    """Runs beyond the history limits, oldest first."""
    status: dict[str, Any]
    """The parent's new status."""
    skipped: str | None = None
    """Why a due run was not created."""
    kept: list[Mapping[str, Any]] = field(default_factory=list)


def due_time(
    schedule: str, since: datetime.datetime, now: datetime.datetime
) -> datetime.datetime | None:
    """The latest cron time in (since, now], or None when there is none."""
    latest: datetime.datetime = croniter(schedule, now).get_prev(datetime.datetime)
    # croniter's get_prev is strictly before `now`; a time exactly at `now` is due too.
    upcoming: datetime.datetime = croniter(schedule, latest).get_next(datetime.datetime)
    if upcoming <= now:
        latest = upcoming
    return latest if latest > since else None


def next_time(schedule: str, now: datetime.datetime) -> datetime.datetime:
    upcoming: datetime.datetime = croniter(schedule, now).get_next(datetime.datetime)
    return upcoming


def stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y%m%d%H%M")


def build_run(parent: Mapping[str, Any], scheduled: datetime.datetime) -> dict[str, Any]:
    """A run: the parent's spec without the schedule, its labels, owned by the parent."""
    meta = parent["metadata"]
    spec = {key: value for key, value in parent["spec"].items() if key not in SCHEDULE_FIELDS}
    return {
        "apiVersion": parent.get("apiVersion", "mlops.dev/v1alpha1"),
        "kind": "TrainingJob",
        "metadata": {
            "name": run_name(meta["name"], stamp(scheduled)),
            "namespace": meta["namespace"],
            "labels": {**(meta.get("labels") or {}), LABEL_SCHEDULED_BY: meta["name"]},
            "annotations": {ANNOTATION_SCHEDULED_TIME: rfc3339(scheduled)},
            "ownerReferences": [owner_reference("TrainingJob", parent["metadata"])],
        },
        "spec": spec,
    }


def owned_runs(parent: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The candidates the parent owns (by uid), newest first."""
    uid = parent["metadata"]["uid"]
    runs = [
        run
        for run in candidates
        if any(ref.get("uid") == uid for ref in run["metadata"].get("ownerReferences") or [])
    ]
    return sorted(runs, key=_scheduled_key, reverse=True)


def _scheduled_key(run: Mapping[str, Any]) -> str:
    meta = run["metadata"]
    annotations = meta.get("annotations") or {}
    return str(annotations.get(ANNOTATION_SCHEDULED_TIME) or meta.get("creationTimestamp") or "")


def _phase(run: Mapping[str, Any]) -> str:
    return str((run.get("status") or {}).get("phase") or PENDING)


def _ref(run: Mapping[str, Any]) -> dict[str, Any]:
    ref = {"name": run["metadata"]["name"], "phase": _phase(run)}
    started = (run.get("status") or {}).get("startTime")
    if started:
        ref["startTime"] = started
    return ref


def trim(
    runs: Sequence[Mapping[str, Any]], successful_limit: int, failed_limit: int
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """(runs kept newest first, names to delete oldest first) under the history limits."""
    kept: list[Mapping[str, Any]] = []
    delete: list[str] = []
    counts = {SUCCEEDED: 0, FAILED: 0}
    limits = {SUCCEEDED: successful_limit, FAILED: failed_limit}
    for run in runs:
        phase = _phase(run)
        if phase in counts:
            counts[phase] += 1
            if counts[phase] > limits[phase]:
                delete.append(run["metadata"]["name"])
                continue
        kept.append(run)
    return kept, list(reversed(delete))


def plan(
    parent: Mapping[str, Any], children: Sequence[Mapping[str, Any]], now: datetime.datetime
) -> Plan:
    """One tick of the parent's schedule."""
    spec, meta = parent["spec"], parent["metadata"]
    old: Mapping[str, Any] = parent.get("status") or {}
    schedule = str(spec["schedule"])
    runs = owned_runs(parent, children)
    since = parse_time(old.get("lastScheduleTime")) or parse_time(meta.get("creationTimestamp"))
    due = due_time(schedule, since or now, now)
    active = [run for run in runs if _phase(run) not in TERMINAL]
    create, skipped = None, None
    if due is not None:
        if active and spec.get("concurrencyPolicy", "Forbid") == "Forbid":
            skipped = (
                f"run for {rfc3339(due)} waits: {active[0]['metadata']['name']} is still "
                "running (concurrencyPolicy Forbid)"
            )
        else:
            create = build_run(parent, due)
    listed = [create, *runs] if create is not None else list(runs)
    if create is not None and any(
        r["metadata"]["name"] == create["metadata"]["name"] for r in runs
    ):
        listed = list(runs)  # created before a restart: already listed
    kept, delete = trim(
        listed,
        int(spec.get("successfulRunsHistoryLimit", 3)),
        int(spec.get("failedRunsHistoryLimit", 1)),
    )
    status = _parent_status(parent, kept, due if create is not None else None, now, skipped)
    return Plan(create, delete, status, skipped, kept)


def _parent_status(
    parent: Mapping[str, Any],
    kept: Sequence[Mapping[str, Any]],
    created: datetime.datetime | None,
    now: datetime.datetime,
    skipped: str | None,
) -> dict[str, Any]:
    old: Mapping[str, Any] = parent.get("status") or {}
    schedule = str(parent["spec"]["schedule"])
    upcoming = rfc3339(next_time(schedule, now))
    if created is not None:
        message = f"created run {run_name(parent['metadata']['name'], stamp(created))}"
    else:
        message = skipped or f"next run at {upcoming}"
    status: dict[str, Any] = {
        "phase": _phase(kept[0]) if kept else PENDING,
        "runs": [_ref(run) for run in kept],
        "message": message,
        "observedGeneration": parent["metadata"].get("generation"),
        "conditions": [
            condition(
                "Scheduled",
                True,
                reason="RunCreated" if created else "Waiting" if skipped else "Scheduled",
                message=f"{schedule} (UTC); next run at {upcoming}",
                generation=parent["metadata"].get("generation"),
                previous=old.get("conditions"),
                now=now,
            )
        ],
    }
    last = rfc3339(created) if created is not None else old.get("lastScheduleTime")
    if last:
        status["lastScheduleTime"] = last
    newest_success = next((run for run in kept if _phase(run) == SUCCEEDED), None)
    source = (newest_success.get("status") or {}) if newest_success is not None else old
    for key in ("model", "metrics", "score"):
        if source.get(key):
            status[key] = source[key]
    return status


ANNOTATION_RETRAINED_FOR = "mlops.dev/retrained-for"
"""On a run that drift started: the ModelDeployment whose stable model drifted."""
ANNOTATION_RETRAINING_REASON = "mlops.dev/retraining-reason"


def retraining_run(
    parent: Mapping[str, Any], now: datetime.datetime, *, mdep: str, why: str
) -> dict[str, Any]:
    """A run of ``parent`` started by drift: a scheduled run's shape (its labels, owned by
    the parent), named by the second, saying which ModelDeployment asked and why."""
    run = build_run(parent, now)
    run["metadata"]["name"] = run_name(
        parent["metadata"]["name"], "drift-" + now.astimezone(datetime.UTC).strftime("%Y%m%d%H%M%S")
    )
    run["metadata"]["annotations"].update(
        {ANNOTATION_RETRAINED_FOR: mdep, ANNOTATION_RETRAINING_REASON: why[:500]}
    )
    return run
