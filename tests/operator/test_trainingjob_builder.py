"""The Job builder: a TrainingJob -> a batch/v1 Job, valid against Kubernetes' own schema."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from mlops_operator.api.workload import NON_RETRYABLE_EXIT_CODES
from mlops_operator.builders.job import build_job, pvc_claim
from mlops_operator.objects import JOB_NAME_MAX, job_name, run_name
from mlops_operator.settings import OperatorSettings
from tests.operator.trainingjob_fixtures import UID, trainingjob

SETTINGS = OperatorSettings(image="mlops-operator:test", pvc_root="/var/lib/mlops/pvc")


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(job: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}


@pytest.mark.parametrize(
    "path",
    [
        "quickstart/01-trainingjob-v1.yaml",
        "quickstart/02-trainingjob-v2.yaml",
        "rollback/01-trainingjob-good.yaml",
        "trainingjob-scheduled.yaml",
    ],
)
def test_job_is_valid_for_kubernetes_1_34(path: str) -> None:
    job = build_job(trainingjob(path), SETTINGS)
    kubernetes_validate.validate(job, "1.34", strict=True)


def test_job_is_owned_labelled_and_named_after_the_trainingjob() -> None:
    job = build_job(trainingjob(), SETTINGS)
    meta = job["metadata"]
    assert meta["name"] == "cancer-v1-train"
    assert meta["namespace"] == "team-a"
    assert meta["labels"]["mlops.dev/trainingjob"] == "cancer-v1"
    assert job["spec"]["template"]["metadata"]["labels"]["mlops.dev/trainingjob"] == "cancer-v1"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "TrainingJob",
            "name": "cancer-v1",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_job_is_deterministic() -> None:
    assert build_job(trainingjob(), SETTINGS) == build_job(trainingjob(), SETTINGS)


def test_pod_runs_mlops_train_from_the_operator_image_with_the_spec() -> None:
    body = trainingjob()
    job = build_job(body, SETTINGS)
    main = container(job)
    assert main["image"] == "mlops-operator:test"
    assert main["command"] == ["mlops"]
    assert main["args"][0] == "train"
    variables = env(job)
    spec = json.loads(variables["MLOPS_TRAININGJOB_SPEC"])
    assert spec["model"] == body["spec"]["model"]
    assert variables["MLOPS_TRAININGJOB_NAME"] == "cancer-v1"
    assert variables["MLOPS_TRAININGJOB_NAMESPACE"] == "team-a"
    assert variables["MLOPS_MODEL_STORE"] == "pvc://mlops-models"
    assert variables["MLOPS_MODEL_VERSION"] == "20261122-100000-0a1b"


def test_job_limits_come_from_the_spec() -> None:
    body = trainingjob(
        backoffLimit=3,
        activeDeadlineSeconds=900,
        ttlSecondsAfterFinished=60,
        resources={"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
    )
    job = build_job(body, SETTINGS)
    assert job["spec"]["backoffLimit"] == 3
    assert job["spec"]["activeDeadlineSeconds"] == 900
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert container(job)["resources"] == {
        "requests": {"cpu": "500m"},
        "limits": {"memory": "1Gi"},
    }
    kubernetes_validate.validate(job, "1.34", strict=True)


def test_pod_is_hardened() -> None:
    job = build_job(trainingjob(), SETTINGS)
    pod = job["spec"]["template"]["spec"]
    main = container(job)
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = main["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    tmp = next(m for m in main["volumeMounts"] if m["mountPath"] == "/tmp")
    assert {"name": tmp["name"], "emptyDir": {}} in pod["volumes"]
    assert main["terminationMessagePath"] == "/dev/termination-log"
    assert main["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_model_store_claim_is_mounted_where_store_py_looks() -> None:
    job = build_job(trainingjob(), SETTINGS)
    pod = job["spec"]["template"]["spec"]
    assert {
        "name": "store-0",
        "persistentVolumeClaim": {"claimName": "mlops-models"},
    } in pod["volumes"]
    assert {
        "name": "store-0",
        "mountPath": "/var/lib/mlops/pvc/mlops-models",
    } in container(job)["volumeMounts"]
    assert env(job)["MLOPS_PVC_ROOT"] == "/var/lib/mlops/pvc"


def test_dataset_claim_is_mounted_read_only() -> None:
    body = trainingjob(
        dataset={"uri": "pvc://datasets/churn.csv", "target": "churned"},
        output={"uri": "pvc://models/prod"},
    )
    job = build_job(body, SETTINGS)
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"].get("readOnly", False)
        for v in job["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"models": False, "datasets": True}
    kubernetes_validate.validate(job, "1.34", strict=True)


def test_s3_store_takes_credentials_from_the_secret_and_mounts_no_claim() -> None:
    body = trainingjob(output={"uri": "s3://models/prod", "secretRef": "minio-creds"})
    job = build_job(body, SETTINGS)
    main = container(job)
    assert main["envFrom"] == [{"secretRef": {"name": "minio-creds"}}]
    assert env(job)["MLOPS_S3_ENDPOINT_URL"] == {
        "secretKeyRef": {"name": "minio-creds", "key": "AWS_ENDPOINT_URL", "optional": True}
    }
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert not any("persistentVolumeClaim" in v for v in volumes)
    kubernetes_validate.validate(job, "1.34", strict=True)


def test_non_retryable_exit_codes_fail_the_job_at_once() -> None:
    job = build_job(trainingjob(), SETTINGS)
    rules = job["spec"]["podFailurePolicy"]["rules"]
    fail = next(r for r in rules if r["action"] == "FailJob")
    assert fail["onExitCodes"]["values"] == list(NON_RETRYABLE_EXIT_CODES)
    assert 10 in fail["onExitCodes"]["values"]  # the quality gate


def test_settings_reach_the_pod() -> None:
    settings = OperatorSettings(
        image="mlops-operator:1.2.3",
        extra_estimators=["xgboost.XGBClassifier"],
        training_service_account="trainer",
        model_store_claim="models",
    )
    job = build_job(trainingjob(), settings)
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "trainer"
    assert env(job)["MLOPS_EXTRA_ESTIMATORS"] == "xgboost.XGBClassifier"
    assert env(job)["MLOPS_MODEL_STORE"] == "pvc://models"


def test_long_names_are_cut_with_a_hash_and_stay_distinct() -> None:
    first, second = "a" * 60 + "x", "a" * 60 + "y"
    assert len(job_name(first)) <= JOB_NAME_MAX
    assert job_name(first) != job_name(second)
    assert job_name(first).endswith("-train")
    assert len(run_name(first, "202611221000")) <= 63
    assert job_name("iris") == "iris-train"


@pytest.mark.parametrize(
    ("uri", "claim"),
    [
        ("pvc://mlops-models", "mlops-models"),
        ("pvc://data/sub/dir.csv", "data"),
        ("s3://bucket/x", None),
        ("file:///tmp/x", None),
        (None, None),
    ],
)
def test_pvc_claim(uri: str | None, claim: str | None) -> None:
    assert pvc_claim(uri) == claim


def test_a_parallel_search_is_an_indexed_job_of_one_pod_per_worker() -> None:
    job = build_job(trainingjob("trainingjob-search-bayesian.yaml", backoffLimit=2), SETTINGS)
    kubernetes_validate.validate(job, "1.34", strict=True)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 3
    assert spec["backoffLimitPerIndex"] == 2  # each worker retried on its own
    assert spec["maxFailedIndexes"] == 0  # worker 0 waits for all: one lost for good fails it
    assert spec["podReplacementPolicy"] == "Failed"  # never two Pods of one index at once
    assert "backoffLimit" not in spec
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "FailJob"
    assert env(job)["MLOPS_MODEL_VERSION"] == "20261122-100000-0a1b"  # one for all workers


def test_a_search_in_one_pod_stays_a_plain_job() -> None:
    job = build_job(trainingjob("trainingjob-search-halving.yaml"), SETTINGS)
    assert "completionMode" not in job["spec"]
    assert job["spec"]["backoffLimit"] == 1


def test_the_salt_comes_from_its_secret_and_the_tracking_server_from_the_operator() -> None:
    body = trainingjob(
        privacy={"hash": ["email"], "saltSecretRef": {"name": "churn-salt", "key": "pepper"}}
    )
    job = build_job(body, OperatorSettings(tracking_uri="http://mlflow.mlops:5000"))
    kubernetes_validate.validate(job, "1.34", strict=True)
    assert env(job)["MLOPS_PRIVACY_SALT"] == {
        "secretKeyRef": {"name": "churn-salt", "key": "pepper"}
    }
    assert env(job)["MLOPS_TRACKING_URI"] == "http://mlflow.mlops:5000"
    plain = env(build_job(trainingjob(), SETTINGS))
    assert "MLOPS_PRIVACY_SALT" not in plain
    assert "MLOPS_TRACKING_URI" not in plain
