"""The work queue behind watch events: one pass per burst, again when asked during a pass,
retried after a failure, run in the context of whoever asked (kopf's Event posting)."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from mlops_operator.controllers import wakeups
from mlops_operator.controllers.wakeups import WakeQueue

pytestmark = pytest.mark.unit
ASKER: contextvars.ContextVar[str] = contextvars.ContextVar("asker", default="nobody")


def wait(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_burst_makes_one_pass_in_the_askers_context() -> None:
    runs: list[tuple[str, str]] = []
    queue: WakeQueue[str] = WakeQueue(
        "test", lambda key: runs.append((key, ASKER.get())), delay=0.2, workers=2
    )
    ASKER.set("handler")
    for _ in range(50):
        queue.add("a")
    queue.add("b")
    wait(lambda: len(runs) == 2 and len(queue) == 0)
    time.sleep(0.3)
    assert sorted(runs) == [("a", "handler"), ("b", "handler")]


def test_asked_again_during_a_pass_runs_once_more() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def handle(key: str) -> None:
        runs.append(key)
        if len(runs) == 1:
            started.set()
            release.wait(5)

    queue: WakeQueue[str] = WakeQueue("test", handle, delay=0.0, workers=2)
    queue.add("a")
    started.wait(5)
    queue.add("a")
    queue.add("a")
    release.set()
    wait(lambda: len(runs) == 2 and len(queue) == 0)
    time.sleep(0.2)
    assert runs == ["a", "a"]


def test_a_failed_pass_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wakeups, "RETRY_SECONDS", 0.05)
    runs: list[str] = []

    def handle(key: str) -> None:
        runs.append(key)
        if len(runs) < 3:
            raise RuntimeError("the API server is away")

    queue: WakeQueue[str] = WakeQueue("test", handle, delay=0.0, workers=1)
    queue.add("a")
    wait(lambda: len(runs) == 3 and len(queue) == 0)
