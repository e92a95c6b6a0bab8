"""A real Prometheus scrapes real model servers; the analysis reads the right numbers from it,
and the builtin scraper agrees."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlops_operator.canary import Plan, RolloutState, Thresholds, decide
from mlops_operator.metrics_sources import BuiltinSource, PrometheusSource

from .prometheus import job, running_prometheus
from .servers import Server, iris_artifacts, model_server, request, send

pytestmark = [
    pytest.mark.component,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed"),
]
SCRAPE = 1.0


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    root = tmp_path_factory.mktemp("models")
    artifacts = iris_artifacts(root)
    with (
        model_server(*artifacts["good"], "stable", log=root / "stable.log") as stable,
        model_server(*artifacts["faulty"], "canary", log=root / "canary.log") as canary,
    ):
        yield {"stable": stable, "canary": canary}


@pytest.fixture(scope="module")
def prometheus(
    servers: dict[str, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("prometheus")
    ports = [s.port for s in servers.values()]
    with running_prometheus(root, [job("model-servers", ports, "ml")], SCRAPE) as url:
        yield url


def targets(servers: dict[str, Server]) -> dict[str, dict[str, str]]:
    return {name: {"pod-0": server.metrics_url} for name, server in servers.items()}


def wait_scraped(url: str, expected: float) -> None:
    """Until Prometheus holds both variants' latest request counts (a scrape after the load):
    on a loaded machine one server's scrape can time out while the other's lands."""
    source = PrometheusSource(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = time.time()
        result = source.query('sum by (variant) (mlops_requests_total{namespace="ml"})', now)
        counts = {item["metric"].get("variant"): float(item["value"][1]) for item in result}
        if all(counts.get(variant, 0) >= expected for variant in ("stable", "canary")):
            return
        time.sleep(0.25)
    raise AssertionError("prometheus did not scrape the latest counts")


def test_analysis_reads_error_rates_from_prometheus(
    servers: dict[str, Server], prometheus: str
) -> None:
    stable, canary = servers["stable"], servers["canary"]
    # Warm-up: every series exists (also the canary's 500s) before the measured interval.
    send(stable.port, 20)
    assert send(canary.port, 20, bad_every=5) == {200: 16, 500: 4}
    wait_scraped(prometheus, 20)
    time.sleep(2 * SCRAPE)
    builtin = BuiltinSource()
    before = builtin.snapshot(targets(servers))
    since = time.time()
    # increase() sees only the samples inside the window: two scrapes of the counts before the
    # load, or a burst sent within one scrape interval is mostly lost to it.
    time.sleep(2 * SCRAPE + 0.5)

    assert send(stable.port, 400) == {200: 400}
    assert send(canary.port, 400, bad_every=4) == {200: 300, 500: 100}
    wait_scraped(prometheus, 420)
    time.sleep(2 * SCRAPE)
    at = time.time()

    exact = builtin.read(targets(servers), before).metrics
    assert exact["stable"] is not None
    assert exact["canary"] is not None
    assert exact["stable"].requests == 400
    assert exact["stable"].error_rate == 0
    assert exact["canary"].requests == 400
    assert exact["canary"].error_rate == pytest.approx(0.25)
    assert exact["canary"].latency_p99_ms is not None

    measured = PrometheusSource(prometheus).read("ml", "iris", ["stable", "canary"], since, at)
    stable_m, canary_m = measured["stable"], measured["canary"]
    assert stable_m is not None
    assert canary_m is not None
    print(f"prometheus: stable {stable_m}, canary {canary_m}; builtin canary {exact['canary']}")
    assert stable_m.error_rate == pytest.approx(0.0, abs=1e-9)
    assert canary_m.error_rate == pytest.approx(0.25, abs=0.02)
    # increase() extrapolates to the window's edges: the count is close, not exact.
    assert canary_m.requests == pytest.approx(400, rel=0.35)
    assert canary_m.latency_p99_ms is not None

    # The analysis acts on it: with failureLimit 1 the canary is rolled back, with the numbers.
    plan = Plan(
        steps=(10, 50), interval=1, thresholds=Thresholds(max_error_rate=0.05, failure_limit=1)
    )
    state = RolloutState(phase="Progressing", canary="sha256:c", weight=10, since=since)
    decision = decide(plan, state, "sha256:c", at, canary_m)
    assert decision.action == "rollback"
    assert f"error rate {canary_m.error_rate:.4f} > maxErrorRate 0.05" in decision.message
    healthy = decide(plan, state, "sha256:c", at, stable_m)
    assert healthy.action == "advance"


def _monitoring_expressions() -> dict[str, str]:
    """Every expression of the chart's dashboard and alerting rules, by where it is."""
    import json
    import re

    from tests.packaging.tools import CHART, one, render

    dashboard = json.loads((CHART / "files" / "dashboards" / "mlops.json").read_text())
    found = {
        f"dashboard: {panel['title']} {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel["targets"]
    }
    rules = one(render({"alerts": {"enabled": True}}), "PrometheusRule")["spec"]["groups"]
    found |= {f"alert: {rule['alert']}": rule["expr"] for group in rules for rule in group["rules"]}
    variables = {"$namespace": ".*", "$model": ".*", "$__rate_interval": "1m"}
    for key, expr in found.items():
        filled = expr
        for name, value in variables.items():
            filled = filled.replace(name, value)
        found[key] = re.sub(r"\s+", " ", filled)
    return found


def test_dashboard_and_alerts_query_metrics_that_exist(
    servers: dict[str, Server], prometheus: str, tmp_path: Path
) -> None:
    """Each panel and alert is valid PromQL to a real Prometheus, and every metric it reads is
    exported by a real model server or by the operator; promtool accepts the rules."""
    import re

    from prometheus_client import generate_latest

    from mlops_operator import metrics as operator_metrics
    from tests.packaging.tools import one, render

    send(servers["stable"].port, 5)
    exported = set(
        re.findall(
            r"^# TYPE (mlops_\w+)",
            request(servers["stable"].port, "GET", "/metrics")[1].decode(),
            re.M,
        )
    )
    exported |= set(
        re.findall(
            r"^# TYPE (mlops_\w+)", generate_latest(operator_metrics.REGISTRY).decode(), re.M
        )
    )
    source = PrometheusSource(prometheus)
    for where, expr in _monitoring_expressions().items():
        source.query(expr, time.time())  # raises QueryError on invalid PromQL
        for name in re.findall(r"\b(mlops_\w+)", expr):
            base = re.sub(r"_(total|bucket|sum|count)$", "", name)
            assert name in exported or base in exported, f"{where}: {name} is not exported"
    rules = one(render({"alerts": {"enabled": True}}), "PrometheusRule")["spec"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rules["groups"]}))
    check = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
