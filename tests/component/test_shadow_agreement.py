"""A shadow judged against stable, with real parts: `mlops serve` processes (the shadow's with
the stable model as its reference, as the operator sets it), the rendered nginx router
mirroring every request, the builtin source and a real Prometheus reading the agreement, and
the state machine deciding on it.

Two shadows (tests/component/shadow_models.py): one agreeing with stable, one trained on
shuffled labels. The expected agreement is computed here from the fitted models on the very
rows sent: the servers must count exactly it, and Prometheus (increase() over the interval)
nearly.
"""

from __future__ import annotations

import http.client
import json
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_operator.canary import Plan, RolloutState, Thresholds, decide
from mlops_operator.canary.metrics import VariantMetrics, comparison
from mlops_operator.metrics_sources import BuiltinSource, PrometheusSource
from mlops_operator.metrics_sources.builtin import scrape
from mlops_operator.traffic import Split

from .backends import Backend
from .prometheus import job, running_prometheus
from .servers import Server, model_server
from .shadow_models import Models, fit_shadow_models, reference_env
from .test_nginx_router import Nginx

pytestmark = [
    pytest.mark.component,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]
ROWS = 300
SCRAPE = 1.0
THRESHOLDS = Thresholds(
    max_error_rate=0.01,
    max_error_rate_increase=0.01,
    max_latency_p99_ratio=20.0,  # loopback latencies on a shared machine: only a sanity bound
    min_agreement=0.9,
    min_requests=100,
    failure_limit=1,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return fit_shadow_models(tmp_path_factory.mktemp("shadow-models"))


@pytest.fixture(scope="module")
def servers(models: Models) -> Iterator[dict[str, Server]]:
    uri, digest = models.artifacts["stable"]
    reference = reference_env(models)
    root = models.root
    with (
        model_server(uri, digest, "stable", log=root / "stable.log") as stable,
        model_server(
            *models.artifacts["agreeing"],
            "canary",
            log=root / "agreeing.log",
            extra_env=reference,
        ) as agreeing,
        model_server(
            *models.artifacts["shuffled"],
            "canary",
            log=root / "shuffled.log",
            extra_env=reference,
        ) as shuffled,
    ):
        yield {"stable": stable, "agreeing": agreeing, "shuffled": shuffled}


@pytest.fixture(scope="module")
def prometheus(
    servers: dict[str, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str | None]:
    """Prometheus scraping each scenario's pair as its own namespace (None without it)."""
    if shutil.which("prometheus") is None:
        yield None
        return
    root = tmp_path_factory.mktemp("prometheus")
    jobs = [
        job(shadow, [servers[s].port for s in ("stable", shadow)], shadow)
        for shadow in ("agreeing", "shuffled")
    ]
    with running_prometheus(root, jobs, SCRAPE) as url:
        yield url


def _router(tmp: Path, stable: Server, shadow: Server) -> Nginx:
    backends = {
        "stable": Backend("stable", port=stable.port),
        "canary": Backend("canary", port=shadow.port),
    }
    tmp.mkdir(parents=True, exist_ok=True)
    router = Nginx(tmp, backends)
    router.write(Split(canary_weight=0, canary=True, mirror=True))
    router.start()
    return router


def _send(port: int, rows: list[list[float]]) -> int:
    """Each row as its own infer request through the router; the 200s."""
    ok = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for row in rows:
            body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}]}
            headers = {"Content-Type": "application/json"}
            conn.request("POST", "/v2/models/iris/infer", json.dumps(body), headers)
            response = conn.getresponse()
            response.read()
            ok += response.status == 200
    finally:
        conn.close()
    return ok


def _compared(server: Server) -> float:
    counters = scrape(server.metrics_url)
    return counters.agree + counters.disagree + counters.skipped


def _wait_compared(server: Server, expected: float) -> None:
    """Mirrored copies arrive, and are compared, after the client's answer."""
    deadline = time.monotonic() + 30
    while _compared(server) < expected:
        assert time.monotonic() < deadline, f"{_compared(server)} rows compared, not {expected}"
        time.sleep(0.1)


def _wait_scraped(url: str, namespace: str, expected: float) -> None:
    source = PrometheusSource(url)
    expr = f'sum(mlops_reference_agreement_total{{namespace="{namespace}"}})'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = source.query(expr, time.time())
        if result and float(result[0]["value"][1]) >= expected:
            return
        time.sleep(0.25)
    raise AssertionError(f"prometheus did not scrape {expected} compared rows of {namespace}")


def _warm_up(router: Nginx, shadow: Server, rows: list[list[float]]) -> float:
    """Every series exists (Prometheus' increase() counts from a first sample)."""
    before = _compared(shadow)
    assert _send(router.port, rows[:20]) == 20
    _wait_compared(shadow, before + 20)
    return before + 20


@dataclass
class Interval:
    stable: VariantMetrics
    canary: VariantMetrics
    since: float
    at: float
    expected: float
    """The agreement the fitted models give on the rows sent."""


def _rows(models: Models, shadow: str) -> tuple[list[list[float]], float]:
    """Iris rows with noise (some near the class boundaries), and the expected agreement."""
    pick = random.Random(f"rows-{shadow}")
    values = models.frame.to_numpy()
    noise = np.random.default_rng(11)
    rows = [
        [round(float(v), 2) for v in values[pick.randrange(len(values))] + noise.normal(0, 0.3, 4)]
        for _ in range(ROWS)
    ]
    frame = pd.DataFrame(rows, columns=models.frame.columns)
    same = models.fitted[shadow].predict(frame) == models.fitted["stable"].predict(frame)
    return rows, float(np.mean(same))


def _interval(
    models: Models, servers: dict[str, Server], shadow: str, prometheus: str | None
) -> Interval:
    """One analysis interval of ROWS requests through the router, read by the builtin source."""
    stable_server, shadow_server = servers["stable"], servers[shadow]
    rows, expected = _rows(models, shadow)
    router = _router(models.root / f"router-{shadow}", stable_server, shadow_server)
    try:
        compared = _warm_up(router, shadow_server, rows)
        if prometheus is not None:
            _wait_scraped(prometheus, shadow, compared)
            time.sleep(2 * SCRAPE)
        targets = {
            "stable": {"pod-0": stable_server.metrics_url},
            "canary": {"pod-0": shadow_server.metrics_url},
        }
        builtin = BuiltinSource()
        before = builtin.snapshot(targets)
        since = time.time()
        if prometheus is not None:
            time.sleep(2 * SCRAPE)  # a sample inside the window before the load
        assert _send(router.port, rows) == ROWS
        _wait_compared(shadow_server, compared + ROWS)
        if prometheus is not None:
            _wait_scraped(prometheus, shadow, compared + ROWS)
            time.sleep(2 * SCRAPE)
        at = time.time()
        measured = builtin.read(targets, before).metrics
    finally:
        router.stop()
    stable, canary = measured["stable"], measured["canary"]
    assert stable is not None
    assert canary is not None
    return Interval(stable, canary, since, at, expected)


@pytest.mark.parametrize(
    ("shadow", "verdict"), [("agreeing", "AnalysisPassed"), ("shuffled", "rollback")]
)
def test_shadow_is_judged_on_its_agreement_with_stable(
    shadow: str,
    verdict: str,
    models: Models,
    servers: dict[str, Server],
    prometheus: str | None,
) -> None:
    got = _interval(models, servers, shadow, prometheus)
    canary = got.canary
    assert got.stable.requests == canary.requests == ROWS  # every request mirrored
    assert canary.compared == ROWS
    assert canary.agreement == pytest.approx(got.expected, abs=1e-9)
    print(
        f"{shadow}: agreement {canary.agreement:.4f} over {canary.compared:g} rows "
        f"(expected {got.expected:.4f}); comparison {comparison(canary, got.stable)}"
    )

    plan = Plan(strategy="shadow", interval=1, thresholds=THRESHOLDS)
    state = RolloutState(phase="Progressing", canary="sha256:c", since=got.since)
    decision = decide(plan, state, "sha256:c", got.at, canary, baseline=got.stable)
    print(f"{shadow}: {decision.action} {decision.reason}: {decision.message}")
    if verdict == "rollback":
        assert decision.action == "rollback"
        assert f"agreement with stable {canary.agreement:.4f} < minAgreement 0.9" in (
            decision.message
        )
    else:
        assert (decision.action, decision.reason) == ("hold", "AnalysisPassed")

    if prometheus is not None:
        read = PrometheusSource(prometheus).read(
            shadow, "iris", ["stable", "canary"], got.since, got.at
        )
        from_prometheus = read["canary"]
        assert isinstance(from_prometheus, VariantMetrics)
        print(f"{shadow}: prometheus agreement {from_prometheus.agreement}")
        assert from_prometheus.agreement == pytest.approx(got.expected, abs=0.02)
        again = decide(plan, state, "sha256:c", got.at, from_prometheus, baseline=read["stable"])
        assert again.action == decision.action
