"""A TrainingJob -> the batch/v1 Job whose Pod runs `mlops train` from the operator's image."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from mlops_operator import defaults
from mlops_operator.api import API_VERSION, TrainingJob
from mlops_operator.api.workload import (
    EXTRA_ESTIMATORS_ENV,
    NAME_ENV,
    NAMESPACE_ENV,
    NON_RETRYABLE_EXIT_CODES,
    SALT_ENV,
    SPEC_ENV,
    STORE_ENV,
    TERMINATION_LOG,
    TRACKING_URI_ENV,
    VERSION_ENV,
)
from mlops_operator.objects import (
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_TRAININGJOB,
    MANAGER,
    container_security_context,
    job_name,
    owner_reference,
    pod_security_context,
)
from mlops_operator.settings import OperatorSettings
from model_server.store import PVC_ROOT_ENV, S3_ENDPOINT_ENV

CONTAINER = "trainer"
TMP_DIR = "/tmp"


def labels(trainingjob: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "mlops-trainer",
        LABEL_COMPONENT: "training",
        LABEL_MANAGED_BY: MANAGER,
        LABEL_TRAININGJOB: trainingjob,
    }


def pvc_claim(uri: str | None) -> str | None:
    """The claim of a pvc://<claim>/<path> URI, None for any other URI."""
    if not uri:
        return None
    parts = urlsplit(uri)
    return parts.netloc or None if parts.scheme == "pvc" else None


def output_uri(tj: TrainingJob, settings: OperatorSettings) -> str:
    return tj.spec.output.uri or settings.default_store_uri


def train_args() -> list[str]:
    """The container's arguments: `mlops train`; the request is in the environment."""
    return ["train", "--termination-log", TERMINATION_LOG, "--log-format", "json"]


def model_version(body: Mapping[str, Any]) -> str:
    """The version a TrainingJob publishes: its creation time (UTC) and 4 hex of its uid, in
    the trainer's format (20261122-101500-a1b2). Fixed per TrainingJob, so a retried Pod never
    publishes a second version (the store refuses to overwrite one: exit code 11)."""
    meta = body["metadata"]
    created = str(meta.get("creationTimestamp") or "")
    digits = "".join(ch for ch in created if ch.isdigit())[:14]
    uid = "".join(ch for ch in str(meta.get("uid") or "") if ch in "0123456789abcdef")
    if len(digits) < 14 or len(uid) < 4:
        raise ValueError("a TrainingJob from the API server has a creationTimestamp and a uid")
    return f"{digits[:8]}-{digits[8:14]}-{uid[:4]}"


def train_env(tj: TrainingJob, settings: OperatorSettings, version: str) -> list[dict[str, Any]]:
    """What `mlops train` reads (docs/trainer.md): spec, name, namespace, store, version."""
    return [
        {"name": SPEC_ENV, "value": json.dumps(tj.spec.dump(), sort_keys=True)},
        {"name": NAME_ENV, "value": tj.metadata.name},
        {"name": NAMESPACE_ENV, "value": tj.metadata.namespace},
        {"name": STORE_ENV, "value": output_uri(tj, settings)},
        {"name": VERSION_ENV, "value": version},
    ]


def _volumes(tj: TrainingJob, settings: OperatorSettings) -> tuple[list[Any], list[Any]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": TMP_DIR}]
    writable = pvc_claim(output_uri(tj, settings))
    claims = {}
    if writable:
        claims[writable] = False
    readable = pvc_claim(tj.spec.dataset.uri)
    if readable and readable not in claims:
        claims[readable] = True
    for index, (claim, read_only) in enumerate(claims.items()):
        name = f"store-{index}"
        source: dict[str, Any] = {"claimName": claim}
        mount: dict[str, Any] = {"name": name, "mountPath": f"{settings.pvc_root}/{claim}"}
        if read_only:  # the API server drops readOnly: false; so do we, to compare equal
            source["readOnly"] = mount["readOnly"] = True
        volumes.append({"name": name, "persistentVolumeClaim": source})
        mounts.append(mount)
    return volumes, mounts


def _env(tj: TrainingJob, settings: OperatorSettings, version: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        *train_env(tj, settings, version),
        {"name": PVC_ROOT_ENV, "value": settings.pvc_root},
        {"name": "HOME", "value": TMP_DIR},
        {"name": "TMPDIR", "value": TMP_DIR},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]
    if settings.extra_estimators:
        env.append({"name": EXTRA_ESTIMATORS_ENV, "value": ",".join(settings.extra_estimators)})
    if settings.tracking_uri:
        env.append({"name": TRACKING_URI_ENV, "value": settings.tracking_uri})
    salt = tj.spec.privacy.salt_secret_ref if tj.spec.privacy else None
    if salt is not None:
        env.append(
            {
                "name": SALT_ENV,
                "valueFrom": {"secretKeyRef": {"name": salt.name, "key": salt.key}},
            }
        )
    secret = tj.spec.output.secret_ref
    if secret:
        env.append(
            {
                "name": S3_ENDPOINT_ENV,
                "valueFrom": {
                    "secretKeyRef": {"name": secret, "key": "AWS_ENDPOINT_URL", "optional": True}
                },
            }
        )
    return env


def build_job(body: Mapping[str, Any], settings: OperatorSettings) -> dict[str, Any]:
    """The Job of the TrainingJob ``body`` (as the API server returned it, with its uid)."""
    tj = TrainingJob.model_validate(_without_status(body))
    name, namespace = tj.metadata.name, tj.metadata.namespace
    volumes, mounts = _volumes(tj, settings)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["mlops"],
        "args": train_args(),
        "env": _env(tj, settings, model_version(body)),
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if tj.spec.output.secret_ref:
        container["envFrom"] = [{"secretRef": {"name": tj.spec.output.secret_ref}}]
    if tj.spec.resources is not None:
        container["resources"] = tj.spec.resources.dump()
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(defaults.RUN_AS),
        "containers": [container],
        "volumes": volumes,
    }
    if settings.training_service_account:
        pod_spec["serviceAccountName"] = settings.training_service_account
    job_spec: dict[str, Any] = {
        "backoffLimit": tj.spec.backoff_limit,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": [int(code) for code in NON_RETRYABLE_EXIT_CODES],
                    },
                },
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "template": {"metadata": {"labels": labels(name)}, "spec": pod_spec},
    }
    workers = tj.spec.search.parallelism if tj.spec.search else 1
    if workers > 1:
        del job_spec["backoffLimit"]
        job_spec.update(_indexed(workers, tj.spec.backoff_limit))
    if tj.spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = tj.spec.active_deadline_seconds
    if tj.spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = tj.spec.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name),
            "namespace": namespace,
            "labels": labels(name),
            "annotations": {"mlops.dev/generation": str(body["metadata"].get("generation", 1))},
            "ownerReferences": [owner_reference("TrainingJob", body["metadata"])],
        },
        "spec": job_spec,
    }


def _indexed(workers: int, retries: int) -> dict[str, Any]:
    """A parallel search: one Pod per worker index (JOB_COMPLETION_INDEX), each retried on its
    own; a replacement starts only once the Pod it replaces has failed, so two Pods of one
    index never share the study; one index failing for good fails the Job (worker 0 would
    wait for it forever)."""
    return {
        "completionMode": "Indexed",
        "completions": workers,
        "parallelism": workers,
        "backoffLimitPerIndex": retries,
        "maxFailedIndexes": 0,
        "podReplacementPolicy": "Failed",
    }


def _without_status(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion", API_VERSION),
        "kind": body.get("kind", "TrainingJob"),
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", "default"),
            "labels": dict(meta.get("labels") or {}),
        },
        "spec": dict(body["spec"]),
    }
