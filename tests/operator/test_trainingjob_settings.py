"""Operator settings from MLOPS_* variables, the RBAC rules file, the metrics."""

from __future__ import annotations

import logging

import pytest
import yaml
from prometheus_client import generate_latest

from mlops_operator import metrics
from mlops_operator.operator import liveness_url, namespaces_of
from mlops_operator.settings import OperatorSettings
from tests.corpus import ROOT

RBAC_RULES = ROOT / "charts" / "mlops-operator" / "files" / "rbac-rules.yaml"


def test_defaults() -> None:
    settings = OperatorSettings()
    assert settings.default_store_uri == "pvc://mlops-models"
    assert settings.namespaces == []
    assert namespaces_of(settings) == (True, ())
    assert liveness_url(8080) == "http://0.0.0.0:8080/healthz"
    assert liveness_url(0) is None


def test_every_setting_is_described() -> None:
    for name, field in OperatorSettings.model_fields.items():
        assert field.description, name


def test_environment_with_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_NAMESPACES", "team-a, team-b")
    monkeypatch.setenv("MLOPS_EXTRA_ESTIMATORS", "xgboost.XGBClassifier")
    monkeypatch.setenv("MLOPS_MODEL_STORE_URI", "s3://models")
    monkeypatch.setenv("MLOPS_SCHEDULE_INTERVAL_SECONDS", "2")
    settings = OperatorSettings()
    assert settings.namespaces == ["team-a", "team-b"]
    assert namespaces_of(settings) == (False, ("team-a", "team-b"))
    assert settings.extra_estimators == ["xgboost.XGBClassifier"]
    assert settings.default_store_uri == "s3://models"
    assert settings.schedule_interval_seconds == 2


def test_rbac_rules_are_policy_rules_with_no_wildcards() -> None:
    rules = yaml.safe_load(RBAC_RULES.read_text())
    assert isinstance(rules, list)
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
    secrets = [r for r in rules if "secrets" in r["resources"]]
    # Only the feedback tokens' Secrets are created; none is ever read, listed or changed.
    assert [(r["resources"], r["verbs"]) for r in secrets] == [(["secrets"], ["create"])]


def test_rbac_rules_make_a_valid_cluster_role() -> None:
    import kubernetes_validate

    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "mlops-operator"},
        "rules": yaml.safe_load(RBAC_RULES.read_text()),
    }
    kubernetes_validate.validate(role, "1.34", strict=True)


def test_reconciles_are_counted_and_timed() -> None:
    with metrics.reconciling("TrainingJob"):
        pass
    with pytest.raises(RuntimeError), metrics.reconciling("TrainingJob"):
        raise RuntimeError
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'mlops_reconcile_total{kind="TrainingJob",result="ok"}' in text
    assert 'mlops_reconcile_total{kind="TrainingJob",result="error"}' in text
    assert "mlops_reconcile_duration_seconds_bucket" in text


def test_operator_command_is_documented() -> None:
    from click.testing import CliRunner

    from mlops_operator.cli import main

    result = CliRunner().invoke(main, ["operator", "--help"])
    assert result.exit_code == 0
    for option in ("--namespace", "--liveness-port", "--metrics-port"):
        assert option in result.output


def test_kopf_keeps_state_in_annotations_and_watches_only_our_objects() -> None:
    import kopf
    from kopf._cogs.structs.references import Resource

    from mlops_operator.operator import tune

    settings = kopf.OperatorSettings()
    tune(settings)
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.scanning.disabled is True
    selectors = settings.watching.label_selectors
    pods = Resource("", "v1", "pods", kind="Pod", singular="pod", namespaced=True)
    jobs = Resource("batch", "v1", "jobs", kind="Job", singular="job", namespaced=True)
    deployments = Resource("apps", "v1", "deployments", kind="Deployment", namespaced=True)
    expected = ["app.kubernetes.io/managed-by=mlops-operator,mlops.dev/trainingjob"]
    assert sorted(selectors.collect(pods)) != []
    assert [",".join(sorted(s.split(","))) for s in selectors.collect(pods)] == expected
    assert [",".join(sorted(s.split(","))) for s in selectors.collect(jobs)] == expected
    children = ["app.kubernetes.io/managed-by=mlops-operator,mlops.dev/modeldeployment"]
    assert [",".join(sorted(s.split(","))) for s in selectors.collect(deployments)] == children
    configmaps = Resource("", "v1", "configmaps", kind="ConfigMap", namespaced=True)
    assert list(selectors.collect(configmaps)) == []  # not watched at all


def test_timer_and_watch_event_successes_are_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mlops_operator.operator import quiet_timers

    objects = logging.getLogger("test.kopf.objects")
    objects.setLevel(logging.INFO)
    quiet_timers(objects)
    with caplog.at_level(logging.INFO, logger="test.kopf.objects"):
        objects.info("Timer 'tick' succeeded.")
        objects.info("Handler 'child-deployments' succeeded.")
        objects.info("Handler 'pod_event' succeeded.")
        objects.info("Handler 'changed' succeeded.")
        objects.error("Timer 'tick' failed with an exception. Will retry.")
    assert [r.getMessage() for r in caplog.records] == [
        "Handler 'changed' succeeded.",
        "Timer 'tick' failed with an exception. Will retry.",
    ]
