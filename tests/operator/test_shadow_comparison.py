"""A shadow judged against stable: the comparison checks (error-rate margin, p99 ratio,
agreement), the numbers the status shows, and what the operator tells the shadow's servers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mlops_operator.api.modeldeployment import ModelDeploymentSpec
from mlops_operator.builders.modeldeployment import children, split_for
from mlops_operator.builders.serving import ServingOptions
from mlops_operator.canary import Plan, RolloutState, Thresholds, VariantMetrics, decide, evaluate
from mlops_operator.canary.metrics import Counters, comparison, summarize
from mlops_operator.canary.resolve import ServedModel
from mlops_operator.manifests import ManifestError, parse
from mlops_operator.metrics_sources import parse_exposition
from mlops_operator.traffic.router import RouterOptions

pytestmark = pytest.mark.unit
SHADOW = Thresholds(
    max_error_rate=1.0,
    max_error_rate_increase=0.01,
    max_latency_p99_ratio=1.5,
    min_agreement=0.95,
    min_requests=20,
    failure_limit=2,
)
STABLE = VariantMetrics(requests=400, error_rate=0.01, latency_p99_ms=20.0)


def shadow(**numbers: Any) -> VariantMetrics:
    return VariantMetrics(
        **{"requests": 400, "error_rate": 0.01, "latency_p99_ms": 22.0, **numbers}
    )


@pytest.mark.parametrize(
    ("canary", "verdict", "why"),
    [
        (shadow(agreement=0.99, compared=400), "Passed", "within thresholds"),
        (
            shadow(agreement=0.61, compared=400),
            "Failed",
            "agreement with stable 0.6100 < minAgreement 0.95",
        ),
        (
            shadow(agreement=0.99, compared=400, latency_p99_ms=31.0),
            "Failed",
            "p99 latency 31.0ms > stable's 20.0ms x maxLatencyP99Ratio 1.5",
        ),
        (
            shadow(agreement=0.99, compared=400, error_rate=0.03),
            "Failed",
            "error rate 0.0300 > stable's 0.0100 + maxErrorRateIncrease 0.01",
        ),
        (
            shadow(),
            "Inconclusive",
            "no agreement with stable (minAgreement) measured",
        ),
    ],
)
def test_a_shadow_is_judged_against_stable(canary: VariantMetrics, verdict: str, why: str) -> None:
    got, message = evaluate(SHADOW, canary, STABLE)
    assert got == verdict
    assert why in message


def test_every_breach_is_named_at_once() -> None:
    worse = shadow(agreement=0.5, compared=400, latency_p99_ms=40.0, error_rate=0.2)
    _, message = evaluate(SHADOW, worse, STABLE)
    for name in ("minAgreement", "maxLatencyP99Ratio", "maxErrorRateIncrease"):
        assert name in message


def test_without_min_agreement_an_unmeasured_agreement_decides_nothing() -> None:
    assert evaluate(replace(SHADOW, min_agreement=None), shadow(), STABLE)[0] == "Passed"


def test_agreement_counts_become_the_interval_numbers() -> None:
    before = Counters(requests=100, agree=90, disagree=10, skipped=0)
    after = Counters(requests=500, agree=450, disagree=40, skipped=10)
    from mlops_operator.canary.metrics import increase

    numbers = summarize(increase(before, after))
    assert numbers.agreement == pytest.approx(360 / 390)
    assert numbers.compared == 390
    status = numbers.to_status()
    assert status["agreement"] == round(360 / 390, 6)
    assert status["compared"] == 390
    assert "agreement" not in summarize(Counters(requests=5)).to_status()


def test_the_status_shows_the_comparison_with_stable() -> None:
    canary = shadow(agreement=0.9, compared=400, latency_p99_ms=30.0, error_rate=0.015)
    assert comparison(canary, STABLE) == {
        "errorRateIncrease": 0.005,
        "latencyP99IncreaseMs": 10.0,
        "latencyP99Ratio": 1.5,
    }
    assert comparison(canary, None) == {}
    assert "latencyP99Ratio" not in comparison(canary, replace(STABLE, latency_p99_ms=0.0))


def test_the_servers_agreement_counter_is_read() -> None:
    text = (
        "# TYPE mlops_reference_agreement_total counter\n"
        'mlops_reference_agreement_total{model="iris",variant="canary",outcome="agree"} 97\n'
        'mlops_reference_agreement_total{model="iris",variant="canary",outcome="disagree"} 3\n'
        'mlops_reference_agreement_total{model="iris",variant="canary",outcome="skipped"} 2\n'
    )
    counters = parse_exposition(text)
    assert (counters.agree, counters.disagree, counters.skipped) == (97, 3, 2)


def test_a_failing_comparison_rolls_the_shadow_back_and_a_passing_one_never_promotes() -> None:
    plan = Plan(strategy="shadow", interval=30, thresholds=SHADOW)
    started = decide(plan, RolloutState(), "sha256:c", 0.0).state
    good = decide(
        plan, started, "sha256:c", 31.0, shadow(agreement=0.99, compared=400), baseline=STABLE
    )
    assert (good.action, good.reason) == ("hold", "AnalysisPassed")
    bad = shadow(agreement=0.7, compared=400)
    once = decide(plan, good.state, "sha256:c", 62.0, bad, baseline=STABLE)
    assert (once.action, once.verdict) == ("hold", "Failed")
    twice = decide(plan, once.state, "sha256:c", 93.0, bad, baseline=STABLE)
    assert twice.action == "rollback"
    assert twice.state.phase == "RolledBack"
    assert "minAgreement 0.95" in twice.message


def _spec(**analysis: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "stable": {"model": {"uri": "pvc://models/iris/v1", "digest": "sha256:" + "1" * 64}},
            "canary": {"model": {"uri": "pvc://other/iris/v2", "digest": "sha256:" + "2" * 64}},
            "strategy": "shadow",
            "analysis": {"minAgreement": 0.95, "maxLatencyP99Ratio": 1.5, **analysis},
        }
    )


def test_the_plan_reads_the_comparison_thresholds() -> None:
    thresholds = Plan.from_spec(_spec()).thresholds
    assert thresholds.min_agreement == 0.95
    assert thresholds.max_latency_p99_ratio == 1.5


def test_the_shadow_servers_get_the_stable_model_as_their_reference() -> None:
    stable = ServedModel("pvc://models/iris/v1", "sha256:" + "1" * 64, "iris-v1")
    canary = ServedModel("pvc://other/iris/v2", "sha256:" + "2" * 64, "iris-v2")
    spec = _spec(agreementTolerance=0.5)
    built = children(
        "iris",
        "ml",
        spec,
        provider="builtin",
        stable=stable,
        canary=canary,
        split=split_for(spec, True, 0),
        serving=ServingOptions(),
        router=RouterOptions(),
        feedback_token="t",
        router_token="r" * 32,
    )
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in built.apply
        if d["kind"] == "Deployment" and d["metadata"]["name"] != "iris-router"
    }
    env = {e["name"]: e.get("value") for e in pods["iris-canary"]["containers"][0]["env"]}
    assert env["MLOPS_REFERENCE_MODEL_URI"] == stable.uri
    assert env["MLOPS_REFERENCE_MODEL_DIGEST"] == stable.digest
    assert env["MLOPS_AGREEMENT_TOLERANCE"] == "0.5"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pods["iris-canary"]["volumes"][1:]}
    assert claims == {"models", "other"}  # its own model's claim and the reference's
    stable_env = {e["name"] for e in pods["iris-stable"]["containers"][0]["env"]}
    assert "MLOPS_REFERENCE_MODEL_URI" not in stable_env


def test_agreement_fields_outside_shadow_are_refused_naming_them() -> None:
    manifest = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "stable": {"model": {"trainingJob": "a"}},
            "canary": {"model": {"trainingJob": "b"}},
            "analysis": {"agreementTolerance": 0.1},
        },
    }
    with pytest.raises(ManifestError, match="apply to strategy shadow only"):
        parse(manifest, "iris.yaml")
