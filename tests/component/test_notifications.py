"""Rollout notifications over real HTTP on loopback: a working sink gets every notification
of a rollout, in order, while a sink that is down (it accepts connections and never answers)
delays nothing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mlops_operator.api.modeldeployment import NotificationSink
from mlops_operator.notifier import Notifier, Sink

from .hooks import hook_server

pytestmark = pytest.mark.component


@contextmanager
def dead_sink() -> Iterator[str]:
    """A URL whose server accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"


def sink(name: str, url: str, **extra: object) -> Sink:
    return Sink.from_spec(NotificationSink.model_validate({"name": name, "url": url, **extra}))


def test_a_dead_sink_delays_neither_the_sender_nor_the_other_sink() -> None:
    notifier = Notifier()
    with hook_server() as server, dead_sink() as dead:
        sinks = [
            sink("dead", dead, timeout="10s", retries=2),  # 30 s for each of its notifications
            sink("team", server.url("/team")),
            sink("chat", server.url("/chat"), format="slack", events=["promoted"]),
        ]
        started = time.monotonic()
        for n, event in enumerate(["started", "step", "step", "promoted"]):
            notifier.send(
                sinks,
                event,
                {
                    "event": event,
                    "n": n,
                    "name": "iris",  # type: ignore[arg-type]
                    "namespace": "ml",
                    "weight": 50,
                    "message": "m",
                },
            )
        sent = time.monotonic() - started
        deadline = time.monotonic() + 10
        while len(server.bodies("/team")) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        arrived = time.monotonic() - started
        team, chat = server.bodies("/team"), server.bodies("/chat")
    assert [b["n"] for b in team] == [0, 1, 2, 3]  # every one, in order
    assert [b["event"] for b in team] == ["started", "step", "step", "promoted"]
    assert len(chat) == 1
    assert chat[0]["text"].startswith(":white_check_mark: *ml/iris* promoted")
    assert sent < 1.0  # queued, never sent inline
    assert arrived < 10.0  # while the dead sink is still on its first notification (30 s)


def test_a_rollout_notifies_every_event_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller over the in-memory API, its sinks over real HTTP: the spec's sink and
    the operator-wide one both get started, step, promoted, in that order."""
    import kopf

    from mlops_operator.canary import VariantMetrics
    from mlops_operator.controllers import modeldeployment as controller
    from tests.operator import test_modeldeployment_reconcile as rec

    monkeypatch.setattr(kopf, "event", lambda *_a, **_k: None)
    rec.with_numbers(monkeypatch, VariantMetrics(requests=100, error_rate=0.0))
    notifier = Notifier()
    monkeypatch.setattr(controller, "NOTIFIER", notifier)
    api = rec.FakeApi()
    api.ready = True
    with hook_server() as server, dead_sink() as dead:
        settings = rec.SETTINGS.model_copy(
            update={"notifications": [NotificationSink(name="all", url=server.url("/all"))]}
        )
        api.put(
            rec.modeldeployment(
                **rec.canary_spec(),
                notifications=[
                    {"name": "team", "url": server.url("/team")},
                    {"name": "dead", "url": dead, "timeout": "10s"},
                ],
            )
        )
        api.put(rec.trainingjob("iris-v1", "Succeeded", rec.V1))
        api.put(rec.trainingjob("iris-v2", "Succeeded", rec.V2))
        for now in (rec.T0, rec.T0 + 10, rec.T0 + 31, rec.T0 + 62):
            controller.reconcile("ml", "iris", client=api, settings=settings, now=now)
        deadline = time.monotonic() + 10
        while len(server.bodies("/team")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        team, everyone = server.bodies("/team"), server.bodies("/all")
    assert api.status["phase"] == "Promoted"
    for received in (team, everyone):
        assert [(b["event"], b["weight"]) for b in received] == [
            ("started", 20),
            ("step", 50),
            ("promoted", 0),
        ]
    assert team[-1]["canary"]["digest"] == rec.V2["digest"]
