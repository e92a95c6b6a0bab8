"""Facts kept in one place stay in step with what repeats them (docs/contributing.md)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import get_args

import pytest
import yaml

from mlops_operator.api.modeldeployment import Analysis, ProviderName, VariantAnalysis
from mlops_operator.canary import Thresholds, VariantMetrics
from mlops_operator.canary.checks import CHECKS, Check
from mlops_operator.canary.metrics import COUNTER_NAMES
from mlops_operator.metrics_sources.source import COUNTED
from mlops_operator.objects import (
    AUTOSCALER,
    CONFIG_MAP,
    DEPLOYMENT,
    DISRUPTION_BUDGET,
    NETWORK_POLICY,
    SERVICE,
    Kind,
)
from mlops_operator.traffic.providers import PROVIDER_KINDS, PROVIDERS

pytestmark = pytest.mark.unit
CHART = Path(__file__).parents[2] / "charts" / "mlops-operator"


def test_every_provider_of_the_api_has_a_row_and_a_chart_value() -> None:
    assert set(PROVIDERS) == set(get_args(ProviderName))
    schema = json.loads((CHART / "values.schema.json").read_text())
    enum = schema["properties"]["operator"]["properties"]["defaultRouter"]["enum"]
    assert set(enum) == set(get_args(ProviderName))


@pytest.mark.parametrize(
    "kind",
    [
        DEPLOYMENT,
        SERVICE,
        CONFIG_MAP,
        DISRUPTION_BUDGET,
        AUTOSCALER,
        NETWORK_POLICY,
        *PROVIDER_KINDS,
    ],
    ids=lambda kind: kind.kind,
)
def test_the_operator_may_write_and_delete_every_child_kind(kind: Kind) -> None:
    rules = yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text())
    granted = set()
    for rule in rules:
        if kind.group in rule["apiGroups"] and kind.plural in rule["resources"]:
            granted |= set(rule["verbs"])
    assert {"get", "create", "patch", "delete"} <= granted


def test_every_counter_has_its_series() -> None:
    assert sorted(series.counter for series in COUNTED) == sorted(COUNTER_NAMES)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.metric)
def test_every_analysis_check_is_in_the_api_and_the_machine(check: Check) -> None:
    threshold = Analysis.model_fields[check.threshold]
    assert threshold.alias == check.spec
    assert check.threshold in {f.name for f in dataclasses.fields(Thresholds)}
    assert check.metric in {f.name for f in dataclasses.fields(VariantMetrics)}
    assert VariantAnalysis.model_fields[check.metric].alias == check.status
