"""Work that watch events ask for, done a moment later and once per burst.

A Deployment rolling out, or a training Pod starting, sends a handful of watch events within a
second; each would cost a whole pass (reads and a status write). :class:`WakeQueue` keeps
each key once until it is due, a short delay after the first event (like client-go's work
queue): the pass then reads everything those events changed. A key added while its pass runs
is run once more after it; a pass that fails is tried again after a back-off. A pass runs in
the context of the handler that asked for it, so kopf's Event posting works in it.
"""

from __future__ import annotations

import contextvars
import heapq
import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
RETRY_SECONDS = 5.0
log = logging.getLogger(__name__)


class WakeQueue(Generic[K]):
    def __init__(
        self, name: str, handle: Callable[[K], None], *, delay: float, workers: int
    ) -> None:
        self.name, self.handle, self.delay, self.workers = name, handle, delay, workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._due: list[tuple[float, int, K]] = []
        self._contexts: dict[K, contextvars.Context] = {}
        self._pending: set[K] = set()
        self._running: set[K] = set()
        self._again: set[K] = set()
        self._order = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, key: K, delay: float | None = None) -> None:
        """Handles ``key`` after ``delay`` (the queue's own by default), unless it is due
        already."""
        with self._cond:
            if key in self._running:
                self._again.add(key)
                return
            if key in self._pending:
                return
            self._pending.add(key)
            self._contexts[key] = contextvars.copy_context()
            self._order += 1
            when = time.monotonic() + (self.delay if delay is None else delay)
            heapq.heappush(self._due, (when, self._order, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending) + len(self._running)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._cond.wait(timeout)
                _, _, key = heapq.heappop(self._due)
                self._pending.discard(key)
                self._running.add(key)
                context = self._contexts.pop(key)
            self._pool.submit(context.run, self._run, key)

    def _run(self, key: K) -> None:
        retry = False
        try:
            self.handle(key)
        except Exception as error:  # a failed pass is retried, never lost
            log.warning(
                "%s: %s failed, retrying in %.0f s: %s", self.name, key, RETRY_SECONDS, error
            )
            retry = True
        with self._cond:
            self._running.discard(key)
            again = key in self._again
            self._again.discard(key)
        if retry or again:
            self.add(key, RETRY_SECONDS if retry else None)  # in this same context
