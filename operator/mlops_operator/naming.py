"""Deterministic names and the labels every object the operator creates carries.

Names are derived, never random: after a restart the operator finds (or, through 409
AlreadyExists, collides with) exactly the object it created before.
"""

from __future__ import annotations

import hashlib

LABEL_TRAININGJOB = "mlops.dev/trainingjob"
"""On Jobs and Pods: the TrainingJob they train for."""
LABEL_SCHEDULED_BY = "mlops.dev/scheduled-by"
"""On runs of a scheduled TrainingJob: the parent's name."""
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "mlops-operator"
ANNOTATION_PREFIX = "mlops.dev"
ANNOTATION_SCHEDULED_TIME = "mlops.dev/scheduled-time"
"""On runs: the cron time the run was created for (RFC 3339)."""

JOB_NAME_MAX = 52
"""Like CronJob's names: leaves the Job controller room for Pod names within 63."""
NAME_MAX = 63


def bounded(base: str, suffix: str, limit: int) -> str:
    """``<base>-<suffix>`` in at most ``limit`` characters; a hash keeps cut names distinct."""
    name = f"{base}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    keep = limit - len(suffix) - len(digest) - 2
    return f"{base[:keep].rstrip('-')}-{digest}-{suffix}"


def job_name(trainingjob: str) -> str:
    """The Job of a TrainingJob: ``<name>-train`` (shortened with a hash when too long)."""
    return bounded(trainingjob, "train", JOB_NAME_MAX)


def run_name(parent: str, stamp: str) -> str:
    """A run of a scheduled TrainingJob: ``<parent>-<YYYYMMDDHHMM>`` of its cron time."""
    return bounded(parent, stamp, NAME_MAX)
