"""Rollout notifications on their way: one FIFO queue per sink, each drained by a thread of
its own, so a slow or dead sink delays nothing but its own queue (never a rollout, never
another sink). Best effort: a failed notification is logged and counted, not kept."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_operator import metrics, webhooks
from mlops_operator.api.modeldeployment import NotificationEvent, NotificationSink
from mlops_operator.canary.machine import seconds
from mlops_operator.canary.notifications import EVENTS, FORMATS

QUEUE_SIZE = 200
"""Notifications a sink may have waiting; beyond it the newest are dropped (and counted)."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sink:
    hook: webhooks.Hook
    format: str
    events: frozenset[NotificationEvent]

    @classmethod
    def from_spec(cls, sink: NotificationSink) -> Sink:
        hook = webhooks.Hook(
            sink.name, "notification", sink.url, seconds(sink.timeout), sink.retries
        )
        return cls(hook, sink.format, frozenset(sink.events or EVENTS))


class _Worker(threading.Thread):
    def __init__(self, sink: Sink) -> None:
        super().__init__(name=f"notify-{sink.hook.name}", daemon=True)
        self.sink = sink
        self.queue: queue.Queue[Mapping[str, Any]] = queue.Queue(QUEUE_SIZE)

    def run(self) -> None:
        while True:
            body = self.queue.get()
            result = webhooks.call(self.sink.hook, body)
            metrics.NOTIFICATIONS.labels(
                self.sink.hook.name, "sent" if result.ok else "failed"
            ).inc()
            if not result.ok:
                log.warning("notification to %s failed: %s", self.sink.hook.url, result.message)


class Notifier:
    """Hands each notification to the queue of every sink that wants its event."""

    def __init__(self) -> None:
        self._workers: dict[tuple[str, str, str], _Worker] = {}
        self._guard = threading.Lock()

    def send(
        self, sinks: Iterable[Sink], event: NotificationEvent, body: Mapping[str, Any]
    ) -> None:
        for sink in sinks:
            if event not in sink.events:
                continue
            try:
                self._worker(sink).queue.put_nowait(FORMATS[sink.format](body))
            except queue.Full:
                metrics.NOTIFICATIONS.labels(sink.hook.name, "dropped").inc()

    def _worker(self, sink: Sink) -> _Worker:
        key = (sink.hook.name, sink.hook.url, sink.format)
        with self._guard:
            worker = self._workers.get(key)
            if worker is None or worker.sink != sink:
                worker = self._workers[key] = _Worker(sink)
                worker.start()
            return worker

    def idle(self) -> bool:
        """Every queue is empty (what tests wait for)."""
        return all(w.queue.empty() for w in self._workers.values())


NOTIFIER = Notifier()
"""The operator's (and the local runner's) one notifier."""
