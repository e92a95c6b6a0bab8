"""Drift-triggered retraining and a shadow judged against stable, on the real node: one chart
installation, real model-server Pods behind the real nginx router Pods, and clients on the
node's host sending predictions through the routers' Services (tests/node/clients.py).

- drift -> retraining -> canary -> promotion with no person in the loop, from the user's own
  manifests (examples/drift-retrain): drifted rows through the router start exactly one run of
  the TrainingJob behind the stable model; the run really trains in a Pod (`mlops train` in
  our image) and passes its gate; the canary that follows the run's label rolls it out and it
  is promoted by itself, the clients then served by the retrained model;
- two shadows of the stable model (tests/component/shadow_models.py's artifacts, written into
  the chart's model store, where the Pods read them as any pvc:// model): the router mirrors
  every row to them; the one trained on shuffled labels is rolled back on its agreement with
  stable, the agreeing one keeps being judged, never promoted.

The shadows start once the drift example's model is trained (its training Pod binds the
model store's claim, WaitForFirstConsumer), so every Pod starts before the first test.
The analysis tick is 1 s and the routers run one Pod (values of the installation below).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client

from mlops_operator.objects import LABEL_SCHEDULED_BY, LABEL_TRAININGJOB
from tests.cluster.harness import REPO, Cluster, wait_for
from tests.cluster.rollouts import Rollouts, condition, promoted
from tests.cluster.test_drift_retraining import DRIFTED_ROW
from tests.component.shadow_models import (
    MIN_AGREEMENT,
    SHADOWS,
    Models,
    fit_shadow_models,
    shadow_deployment,
)

from .chart import Release
from .clients import Installation, is_, tear_down
from .realnode import RealNode

GROUP, VERSION = "mlops.dev", "v1alpha1"
EXAMPLE = REPO / "examples" / "drift-retrain"
MDEP, PARENT = "iris", "iris-train"  # the example's


@dataclass
class Lab(Installation):
    shadows: Models
    claim: str

    def trainingjob(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.rollouts.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "trainingjobs", name
        )
        return found

    def runs(self) -> list[dict[str, Any]]:
        """The runs of the example's TrainingJob (drift's or a schedule's)."""
        found = self.rollouts.custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            "trainingjobs",
            label_selector=f"{LABEL_SCHEDULED_BY}={PARENT}",
        )
        return list(found["items"])

    def trained(self, name: str, timeout: float) -> dict[str, Any]:
        """The TrainingJob's status once it Succeeded (an AssertionError if it Failed)."""

        def done() -> dict[str, Any] | None:
            status = self.trainingjob(name).get("status") or {}
            assert status.get("phase") != "Failed", (status, self.release.describe())
            return status if status.get("phase") == "Succeeded" else None

        return wait_for(f"TrainingJob {name} Succeeded", done, timeout)


def shadow(name: str, models: Models, claim: str, store: Path) -> dict[str, Any]:
    """tests/cluster/test_shadow_analysis.py's shadow, its models pvc:// URIs in the store."""

    def model(which: str) -> dict[str, str]:
        path, digest = models.artifacts[which]
        return {"uri": f"pvc://{claim}/{Path(path).relative_to(store)}", "digest": digest}

    return shadow_deployment(name, model)


@pytest.fixture(scope="module")
def lab(cluster: Cluster, node: RealNode) -> Iterator[Lab]:
    env = [{"name": "MLOPS_ANALYSIS_TICK_SECONDS", "value": "1"}]
    values = ("--set=operator.routerReplicas=1", f"--set-json=operator.extraEnv={json.dumps(env)}")
    release = Release.create(cluster, node, "drift", "drift", values=values)
    started_at = time.monotonic()
    found: Lab | None = None
    try:
        release.run("install")
        cluster.apply_files(*sorted(EXAMPLE.glob("*.yaml")), namespace=release.watch)
        custom = client.CustomObjectsApi(cluster.api)
        rollouts = Rollouts(custom, release.watch)
        found = Lab(release, rollouts, Models(Path(), {}, {}, None), "")
        model = found.trained(PARENT, 420)["model"]
        node.e2e_timings["drift and shadow: install -> trained"] = round(
            time.monotonic() - started_at, 1
        )
        # The claim is bound now: the shadows' artifacts go next to the trained model.
        found.claim = urlsplit(model["uri"]).netloc
        store = release.model_store()
        found.shadows = fit_shadow_models(store / release.watch / "shadow-models")
        for name in SHADOWS:
            rollouts.create(shadow(name, found.shadows, found.claim, store))
        yield found
    finally:
        tear_down(
            release,
            node,
            found,
            prefix="drift-shadow",
            label="drift and shadow",
            started=started_at,
        )


def test_drift_retrains_once_and_the_new_model_canaries_and_is_promoted_by_itself(
    lab: Lab,
) -> None:
    c = lab
    policy = yaml.safe_load((EXAMPLE / "02-modeldeployment.yaml").read_text())["spec"]
    max_psi, intervals = policy["retraining"]["maxPsi"], policy["retraining"]["intervals"]
    numbers: dict[str, Any] = {}
    c.numbers["drift -> retraining -> promotion"] = numbers
    stable = c.trainingjob(PARENT)["status"]["model"]
    wait_for("the stable model served", lambda: c.status(MDEP).get("phase") == "Stable", 180)
    # Served, read every interval, no traffic yet: no drift reported, nothing retrains.
    wait_for(
        "the drift read",
        lambda: (c.status(MDEP).get("retraining") or {}).get("message") == "no drift reported yet",
        30,
    )
    assert c.runs() == []
    live = c.client(MDEP, rows=[DRIFTED_ROW], rps=25)
    drifting = time.monotonic()
    run = wait_for("a retraining run", lambda: c.runs() and c.runs()[0], 120)
    numbers["drifted rows -> run created_s"] = round(time.monotonic() - drifting, 2)
    name = run["metadata"]["name"]
    retraining = c.status(MDEP)["retraining"]
    assert retraining["run"] == name, retraining
    assert f"> maxPsi {max_psi:g}" in retraining["message"], retraining
    reason = run["metadata"]["annotations"]["mlops.dev/retraining-reason"]
    assert f"maxPsi {max_psi:g} for {intervals} interval(s) in a row" in reason, reason
    assert run["metadata"]["annotations"]["mlops.dev/retrained-for"] == MDEP
    events = c.cluster.core.list_namespaced_event(
        c.namespace, field_selector=f"involvedObject.name={MDEP},reason=RetrainingStarted"
    )
    assert [e.message.startswith(f"started run {name} of {PARENT}") for e in events.items] == [
        True
    ], [e.message for e in events.items]

    # The run trains in its own Pod, our image's `mlops train`, and passes its gate.
    retrained = c.trained(name, 300)["model"]
    numbers["drifted rows -> run Succeeded_s"] = round(time.monotonic() - drifting, 2)
    assert retrained["digest"] != stable["digest"]
    pods = c.release.pods(c.namespace, f"{LABEL_TRAININGJOB}={name}")
    assert [p.status.phase for p in pods] == ["Succeeded"], [p.status for p in pods]
    (container,) = pods[0].spec.containers
    assert container.image == c.release.image
    assert "train" in [*(container.command or []), *(container.args or [])], container

    # The canary follows the run's label: judged at 50%, promoted by itself, handed off.
    status, seen = c.rollouts.watch(
        MDEP, lambda s: promoted(s) and s["stable"]["digest"] == retrained["digest"], 300
    )
    numbers["drifted rows -> promoted and handed off_s"] = round(time.monotonic() - drifting, 2)
    numbers["phases seen (s, phase, canary weight)"] = seen
    assert any(phase == "Progressing" for _, phase, _ in seen), seen  # it canaried
    assert status["history"][-1]["outcome"] == "Promoted", status["history"]
    assert status["history"][-1]["model"] == name, status["history"]
    assert status["history"][-1]["digest"] == retrained["digest"]
    served = live.moved(time.monotonic(), is_("stable", str(retrained["version"])), timeout=120)
    numbers["promoted -> every answer from the retrained model_s"] = served

    # The drift goes on (the retrained model sees the same rows): held by the cooldown.
    held = wait_for(
        "the cooldown holding",
        lambda: "cooldown" in (c.status(MDEP).get("retraining") or {}).get("message", ""),
        90,
    )
    assert held
    assert [r["metadata"]["name"] for r in c.runs()] == [name]
    assert c.status(MDEP)["retraining"]["runs"] == 1
    numbers["failed answers (s after the drift started, code)"] = [
        (round(a.at - drifting, 2), a.code) for a in live.errors(drifting)
    ]
    live.stop()


def test_a_shadow_is_judged_on_its_agreement_with_stable(lab: Lab) -> None:
    c, models = lab, lab.shadows
    apps = client.AppsV1Api(c.cluster.api)
    stable_digest = models.artifacts["stable"][1]
    for name in SHADOWS:
        servers = wait_for(
            f"{name}'s shadow servers",
            lambda name=name: exists_deployment(apps, c.namespace, f"{name}-canary"),
            120,
        )
        env = {e.name: e.value for e in servers.spec.template.spec.containers[0].env or []}
        assert env["MLOPS_REFERENCE_MODEL_DIGEST"] == stable_digest
        assert env["MLOPS_REFERENCE_MODEL_URI"].endswith("/stable")
    pick = random.Random(5)
    values = models.frame.to_numpy().tolist()
    rows = [[round(v + pick.gauss(0, 0.3), 2) for v in pick.choice(values)] for _ in range(500)]
    live = {name: c.client(name, rows=rows, rps=20) for name in SHADOWS}
    sending = time.monotonic()
    rolled_back, seen = c.rollouts.watch("shuffled", lambda s: s.get("phase") == "RolledBack", 180)
    c.numbers["shadow: traffic -> the shuffled-label shadow rolled back_s"] = round(
        time.monotonic() - sending, 2
    )
    assert [phase for _, phase, _ in seen if phase == "Promoted"] == [], seen
    analysis = rolled_back["analysis"]
    assert analysis["canary"]["agreement"] < MIN_AGREEMENT, analysis
    assert f"< minAgreement {MIN_AGREEMENT:g}" in rolled_back["message"], rolled_back["message"]
    assert condition(rolled_back, "RolledBack")["reason"] == "AnalysisFailed"
    assert rolled_back["history"][-1]["outcome"] == "RolledBack"

    def judged() -> dict[str, Any] | None:
        status = c.status("agreeing")
        canary = (status.get("analysis") or {}).get("canary") or {}
        return status if canary.get("compared", 0) >= 20 else None

    agreeing = wait_for("an analysed interval of the agreeing shadow", judged, 60)
    time.sleep(6)  # three more intervals: it goes on being judged, and stays
    agreeing = c.status("agreeing")
    c.numbers["shadow: messages"] = {
        "shuffled": rolled_back["message"],
        "agreeing": agreeing["analysis"]["message"],
    }
    assert agreeing["phase"] == "Progressing", agreeing
    judged_now = agreeing["analysis"]
    assert judged_now["verdict"] == "Passed", judged_now
    assert judged_now["canary"]["agreement"] >= MIN_AGREEMENT, judged_now
    assert "latencyP99Ratio" in judged_now["comparison"], judged_now
    assert judged_now["stable"]["requests"] >= 20, judged_now
    assert [h.get("outcome") for h in agreeing["history"]] == [None], "a shadow is never promoted"
    # The clients were answered by stable all along: a shadow's answers are dropped.
    for name, sent in live.items():
        answered = sent.snapshot()
        assert answered, name
        assert all(a.code == 200 and a.variant == "stable" for a in answered), answered[-5:]
        sent.stop()


def exists_deployment(apps: client.AppsV1Api, namespace: str, name: str) -> Any:
    found = apps.list_namespaced_deployment(namespace, field_selector=f"metadata.name={name}")
    return found.items[0] if found.items else None
