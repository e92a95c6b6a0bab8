"""The router's proof, end to end: real nginx running the configuration our code renders (its
snippet from traffic.proof, as the router Pod mounts it from the Secret) in front of real
`mlops serve` processes given the same token. What comes through the router is
source="router"; what a client sends a server directly, or with a forged proof, is
source="direct" and moves none of the counters the analysis reads behind the builtin router."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mlops_operator.metrics_sources import BuiltinSource, parse_exposition, sources_for
from mlops_operator.traffic import Split
from mlops_operator.traffic.nginx import HEALTH_PATH, NginxConfig, render
from mlops_operator.traffic.proof import SNIPPET_KEY, snippet
from mlops_operator.traffic.split import OVERRIDE_HEADER
from model_server.metric_names import ROUTER_HEADER
from model_server.testing import http

from .backends import free_port
from .servers import BAD_ROW, GOOD_ROW, Server, iris_artifacts, model_server

pytestmark = [
    pytest.mark.component,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]
TOKEN = "Zr0uter-t0ken_for-this-test-only-0123456789"
FEEDBACK_TOKEN = "feedback-token-of-this-test"
ROUTER_ONLY = sources_for(proves_source=True)


@contextmanager
def router(prefix: Path, split: Split, servers: dict[str, Server]) -> Iterator[str]:
    """nginx with the rendered configuration and the proof snippet in its prefix."""
    prefix.mkdir()
    proof = prefix / SNIPPET_KEY
    proof.write_text(snippet(TOKEN))
    proof.chmod(0o600)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        render(
            NginxConfig(
                split=split,
                stable=[f"127.0.0.1:{servers['stable'].port}"],
                canary=[f"127.0.0.1:{servers['canary'].port}"],
                listen=f"127.0.0.1:{port}",
                runtime_dir=str(prefix),
                error_log=str(prefix / "error.log"),
                worker_processes="1",
                user=getpass.getuser() if os.geteuid() == 0 else None,
                salt="test/iris",
                proof=str(proof),
            )
        )
    )
    assert TOKEN not in conf.read_text()
    command = ["nginx", "-p", str(prefix), "-c", str(conf)]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([*command, "-g", "daemon off;"])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if http(base, "GET", HEALTH_PATH)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (prefix / "error.log").read_text()
            time.sleep(0.05)
        yield base
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=10)


def infer(base: str, row: list[float], id_: str, headers: dict[str, str]) -> int:
    body = {
        "id": id_,
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}],
    }
    return int(http(base, "POST", "/v2/models/iris/infer", body, headers=headers)[0])


def feedback(base: str, id_: str, headers: dict[str, str]) -> int:
    auth = {"Authorization": f"Bearer {FEEDBACK_TOKEN}", **headers}
    body = {"id": id_, "truth": [2]}  # the iris model says 0 for GOOD_ROW: incorrect
    return int(http(base, "POST", "/v2/models/iris/feedback", body, headers=auth)[0])


def exposition(server: Server) -> str:
    status, text = http(server.url, "GET", "/metrics")
    assert status == 200
    return text if isinstance(text, str) else text.decode()


def sample(text: str, prefix: str) -> float:
    """The value of the one sample whose line starts with ``prefix``."""
    (value,) = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    ]
    return value


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """stable: the good model; canary: the faulty one (a 500 on BAD_ROW), both with the
    router's token and a feedback token."""
    artifacts = iris_artifacts(tmp_path_factory.mktemp("proof-models"))
    env = {"MLOPS_ROUTER_TOKEN": TOKEN, "MLOPS_FEEDBACK_TOKEN": FEEDBACK_TOKEN}
    with (
        model_server(*artifacts["good"], "stable", extra_env=env) as stable,
        model_server(*artifacts["faulty"], "canary", extra_env=env) as canary,
    ):
        yield {"stable": stable, "canary": canary}


def test_only_what_comes_through_the_router_moves_the_analysis(
    servers: dict[str, Server], tmp_path: Path
) -> None:
    targets = {v: {s.url: s.metrics_url} for v, s in servers.items()}
    analysis = BuiltinSource(sources=ROUTER_ONLY)
    everything = BuiltinSource()
    before, before_all = analysis.snapshot(targets), everything.snapshot(targets)
    canary = servers["canary"].url
    forged = {ROUTER_HEADER: "forged"}
    with router(tmp_path / "nginx", Split(canary=True, canary_weight=50), servers) as base:
        to_canary = {OVERRIDE_HEADER: "canary"}
        # Through the router: 10 good predictions forced to the canary, the client's own
        # (forged) copy of the proof overwritten by nginx, and their feedback.
        for i in range(10):
            assert infer(base, GOOD_ROW, f"routed-{i}", {**to_canary, **forged}) == 200
        for i in range(4):
            assert feedback(base, f"routed-{i}", forged) == 200
        # Straight to the canary's server: 30 failing requests and 20 good ones, without the
        # proof, with a forged one, and with the header's name in another case; their
        # feedback too.
        for i in range(30):
            headers: dict[str, Any] = [{}, forged, {"x-mlops-router": "x" * 43}][i % 3]
            assert infer(canary, BAD_ROW, f"direct-bad-{i}", headers) == 500
        for i in range(20):
            assert infer(canary, GOOD_ROW, f"direct-{i}", forged if i % 2 else {}) == 200
        for i in range(20):
            assert feedback(canary, f"direct-{i}", forged if i % 2 else {}) == 200
    text = exposition(servers["canary"])
    assert sample(text, 'mlops_requests_total{code="200",model="iris",source="router"') == 10
    assert sample(text, 'mlops_requests_total{code="200",model="iris",source="direct"') == 20
    assert sample(text, 'mlops_requests_total{code="500",model="iris",source="direct"') == 30
    assert 'code="500",model="iris",source="router"' not in text
    routed_feedback = 'mlops_feedback_total{model="iris",outcome="incorrect",source="router"'
    assert sample(text, routed_feedback) == 4
    direct_feedback = 'mlops_feedback_total{model="iris",outcome="incorrect",source="direct"'
    assert sample(text, direct_feedback) == 20
    routed_latency = 'mlops_request_duration_seconds_count{model="iris",source="router"'
    assert sample(text, routed_latency) == 10

    # What the analysis reads behind the builtin router: the canary is clean, and only the
    # routed requests count; counting every source it would fail on the direct 500s.
    canary_metrics = analysis.read(targets, before).metrics["canary"]
    assert canary_metrics is not None
    assert canary_metrics.requests == 10
    assert canary_metrics.error_rate == 0.0
    assert canary_metrics.accuracy == 0.0  # the 4 routed feedbacks, all incorrect
    unfiltered = everything.read(targets, before_all).metrics["canary"]
    assert unfiltered is not None
    assert unfiltered.requests == 60
    assert unfiltered.error_rate == pytest.approx(0.5)
    # The stable server saw no prediction: every routed request was forced to the canary.
    stable_metrics = analysis.read(targets, before).metrics["stable"]
    assert stable_metrics is not None
    assert stable_metrics.requests == 0
    assert parse_exposition(text, ROUTER_ONLY).requests == parse_exposition(text).requests - 50


def test_mirrored_requests_carry_the_proof_too(servers: dict[str, Server], tmp_path: Path) -> None:
    """In shadow the canary's traffic is nginx's mirror subrequest, a location with headers
    of its own: it includes the proof as well."""
    targets = {v: {s.url: s.metrics_url} for v, s in servers.items()}
    analysis = BuiltinSource(sources=ROUTER_ONLY)
    before = analysis.snapshot(targets)
    with router(tmp_path / "nginx", Split(canary=True, mirror=True), servers) as base:
        for i in range(8):
            assert infer(base, GOOD_ROW, f"mirrored-{i}", {ROUTER_HEADER: "forged"}) == 200
        deadline = time.monotonic() + 10
        while True:  # the mirrored copies are sent after the answers
            reading = analysis.read(targets, before).metrics
            mirrored = reading["canary"]
            if (mirrored is not None and mirrored.requests >= 8) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert reading["stable"] is not None
    assert reading["stable"].requests == 8
    assert mirrored is not None
    assert mirrored.requests == 8
