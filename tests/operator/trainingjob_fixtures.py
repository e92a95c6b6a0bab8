"""TrainingJob bodies, Jobs and Pods as the API server returns them, for the unit tests."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from tests.corpus import EXAMPLES

UID = "0a1b2c3d-0000-4000-8000-000000000001"
JOB_UID = "0a1b2c3d-0000-4000-8000-000000000002"


def trainingjob(path: str = "quickstart/01-trainingjob-v1.yaml", **spec: Any) -> dict[str, Any]:
    """An example TrainingJob as it comes back from the API server (uid, generation)."""
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / path).read_text())
    body["metadata"].update(
        namespace="team-a",
        uid=UID,
        generation=1,
        resourceVersion="100",
        creationTimestamp="2026-11-22T10:00:00Z",
    )
    body["spec"].update(spec)
    return body


def job(conditions: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "cancer-v1-train",
            "namespace": "team-a",
            "uid": JOB_UID,
            "creationTimestamp": "2026-11-22T10:00:01Z",
            "ownerReferences": [{"uid": UID, "kind": "TrainingJob", "name": "cancer-v1"}],
        },
        "spec": {"backoffLimit": 1, "activeDeadlineSeconds": 600},
        "status": {"startTime": "2026-11-22T10:00:01Z", "conditions": conditions or [], **status},
    }


def true(type_: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-22T10:05:00Z",
    }


def pod(
    name: str = "cancer-v1-train-abcde",
    phase: str = "Running",
    *,
    created: str = "2026-11-22T10:00:02Z",
    state: dict[str, Any] | None = None,
    memory: str | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "trainer", "image": "mlops-operator:0.1.0"}
    if memory:
        container["resources"] = {"limits": {"memory": memory}}
    statuses = []
    if state is not None:
        statuses = [{"name": "trainer", "image": "mlops-operator:0.1.0", "state": state}]
    return {
        "metadata": {"name": name, "namespace": "team-a", "creationTimestamp": created},
        "spec": {"containers": [container]},
        "status": {"phase": phase, "containerStatuses": statuses},
    }


def terminated(code: int, message: str = "", reason: str | None = None) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "message": message,
        }
    }


RESULT = {
    "metrics": {"accuracy": 0.965, "f1_macro": 0.96, "roc_auc": 0.99},
    "model": {
        "uri": "pvc://mlops-models/team-a/cancer-v1/20261122-100500",
        "digest": "sha256:" + "ab" * 32,
        "version": "20261122-100500",
    },
}


def result(**changes: Any) -> str:
    value = copy.deepcopy(RESULT)
    value.update(changes)
    return json.dumps(value)
