"""Rollout webhooks over real HTTP on loopback: the JSON body, 2xx or not, timeouts and
retries (a 5xx and no answer are retried, a 4xx is final)."""

from __future__ import annotations

import socket
import time

import pytest

from mlops_operator import webhooks
from mlops_operator.canary.hooks import payload

from .hooks import hook_server

pytestmark = pytest.mark.component
STATUS = {
    "phase": "Progressing",
    "canaryWeight": 50,
    "canary": {"model": "iris-v2", "digest": "sha256:2", "readyReplicas": 1},
    "stable": {"model": "iris-v1", "digest": "sha256:1"},
    "analysis": {"verdict": "Passed", "message": "within thresholds", "snapshot": {"x": {}}},
}


def hook(url: str, kind: str = "confirm-promotion", **extra: object) -> webhooks.Hook:
    return webhooks.Hook(
        **{"name": "gate", "kind": kind, "url": url, "timeout": 2.0, "retries": 2, **extra}
    )  # type: ignore[arg-type]


def test_the_body_names_the_object_the_kind_the_weight_and_the_analysis() -> None:
    with hook_server() as server:
        body = payload("iris", "ml", "confirm-promotion", STATUS)
        gate = hook(server.url("/gate"), metadata={"cmd": "hey -z 1m"})
        outcome, results = webhooks.run([gate], "confirm-promotion", body)
        assert outcome.ok
        assert results[0].code == 200
        sent = server.bodies("/gate")[0]
    assert sent == {
        "name": "iris",
        "namespace": "ml",
        "type": "confirm-promotion",
        "phase": "Progressing",
        "weight": 50,
        "canary": {"model": "iris-v2", "digest": "sha256:2"},
        "stable": {"model": "iris-v1", "digest": "sha256:1"},
        "analysis": {"verdict": "Passed", "message": "within thresholds"},
        "metadata": {"cmd": "hey -z 1m"},
    }


def test_a_5xx_is_retried_a_4xx_is_not() -> None:
    with hook_server() as server:
        server.codes = {"/down": 503, "/no": 403}
        down = webhooks.call(hook(server.url("/down")), {})
        no = webhooks.call(hook(server.url("/no")), {})
    assert (down.ok, down.code, down.attempts) == (False, 503, 3)
    assert (no.ok, no.code, no.attempts) == (False, 403, 1)
    assert "gate: HTTP 403" in no.message


def test_only_kinds_asked_for_are_called_and_all_must_pass() -> None:
    with hook_server() as server:
        server.codes = {"/b": 500}
        hooks = [
            hook(server.url("/a"), kind="rollout", name="a"),
            hook(server.url("/b"), kind="rollout", name="b", retries=0),
            hook(server.url("/c"), kind="rollback", name="c"),
        ]
        outcome, results = webhooks.run(hooks, "rollout", {})
    assert [r.name for r in results] == ["a", "b"]
    assert not outcome.ok
    assert outcome.message == 'b: HTTP 500: {"path": "/b", "code": 500}'


def test_no_answer_within_the_timeout_fails_after_the_retries() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        started = time.monotonic()
        result = webhooks.call(hook(url, timeout=0.3, retries=1), {})
        took = time.monotonic() - started
    assert (result.ok, result.code, result.attempts) == (False, None, 2)
    assert "no answer" in result.message
    assert took < 5.0  # 2 x 0.3 s and one backoff, not a socket without a timeout


def test_a_reconciliation_calls_the_gate_and_records_each_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The controller over the in-memory API, its webhooks over real HTTP: the gate holds the
    rollout (the condition names it) until the server answers 2xx; post-rollout follows."""
    import kopf

    from mlops_operator.canary import VariantMetrics
    from tests.operator import test_modeldeployment_reconcile as rec

    monkeypatch.setattr(kopf, "event", lambda *_a, **_k: None)
    rec.with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.0))
    api = rec.FakeApi()
    api.ready = True
    with hook_server() as server:
        server.codes["/confirm"] = 403
        api.put(
            rec.modeldeployment(
                **rec.canary_spec(),
                webhooks=[
                    {"name": "approve", "type": "confirm-promotion", "url": server.url("/confirm")},
                    {"name": "tell", "type": "post-rollout", "url": server.url("/post")},
                ],
            )
        )
        api.put(rec.trainingjob("iris-v1", "Succeeded", rec.V1))
        api.put(rec.trainingjob("iris-v2", "Succeeded", rec.V2))
        for now in (rec.T0, rec.T0 + 31, rec.T0 + 62, rec.T0 + 63):
            rec.reconcile(api, now)
        progressing = api.condition("Progressing")
        assert (progressing["reason"], api.status["canaryWeight"]) == (
            "WaitingForConfirmPromotion",
            50,
        )
        assert "approve: HTTP 403" in progressing["message"]
        assert len(server.bodies("/confirm")) == 1  # polled from the pass after the last step
        server.codes["/confirm"] = 200
        rec.reconcile(api, rec.T0 + 64)
        assert api.status["phase"] == "Promoted"
        posted = server.bodies("/post")
        calls = {c["name"]: c for c in api.status["webhooks"]}
    assert [b["type"] for b in posted] == ["post-rollout"]
    assert posted[0]["phase"] == "Promoted"
    assert (calls["approve"]["ok"], calls["approve"]["code"]) == (True, 200)
    assert calls["tell"]["ok"]
