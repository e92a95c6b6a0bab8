"""Operator settings from MLOPS_* variables, the RBAC rules file, the metrics."""

from __future__ import annotations

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
    assert secrets == []


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
