"""Adaptive micro-batching: concurrent requests joined into one predict call.

After MLServer's ``mlserver/batching/adaptive.py``: a batch is flushed when it reaches
``max_batch_size`` rows or when ``max_wait`` seconds passed since its first request. One batch
is predicted at a time, off the event loop, so requests arriving meanwhile queue up and join the
next batch: under load batches grow by themselves, with no added latency when idle. The queue is
created inside the running loop (on first use), never at import or construction time.

With ``inline`` (a runtime whose predict costs microseconds, less than handing it to a thread
and back), batches are predicted on the event loop itself, with no thread and no task: the
first request schedules a flush with ``call_soon``, every request the loop parses before that
callback runs joins the batch. One connection: one request per batch, predicted a few
microseconds after it arrived. Many connections: what arrived in one loop iteration, together.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class AdaptiveBatcher(Generic[Item, Result]):
    def __init__(
        self,
        process: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        *,
        max_batch_size: int,
        max_wait: float,
        size: Callable[[Item], int] = lambda _: 1,
        inline: bool = False,
    ) -> None:
        self._process = process
        self._max_batch_size = max_batch_size
        self._max_wait = max_wait
        self._size = size
        self._pending: collections.deque[tuple[Item, asyncio.Future[Result]]] | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._inline = inline
        self._flush_scheduled = False
        self._executor = (
            None if inline else ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        )
        self._closing = False

    def _start(self) -> None:
        self._pending = collections.deque()
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` for the next batch and wait for its result."""
        if self._closing:
            raise RuntimeError("the batcher is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        if self._inline:
            if self._pending is None:
                self._pending = collections.deque()
            self._pending.append((item, future))
            if not self._flush_scheduled:
                self._flush_scheduled = True
                if self._max_wait > 0:
                    loop.call_later(self._max_wait, self._flush)
                else:
                    loop.call_soon(self._flush)
            return await future
        if self._pending is None:
            self._start()
        assert self._pending is not None
        assert self._wakeup is not None
        self._pending.append((item, future))
        self._wakeup.set()
        return await future

    def _flush(self) -> None:
        """Inline mode: predict everything pending, in batches of at most max_batch_size."""
        self._flush_scheduled = False
        pending = self._pending
        assert pending is not None
        while pending:
            batch, _ = self._take(pending, [], 0)
            if batch:
                self._deliver(batch, self._call([item for item, _ in batch]))

    def _call(self, items: list[Item]) -> Sequence[Result | BaseException]:
        try:
            return self._process(items)
        except Exception as error:
            return [error] * len(items)

    @staticmethod
    def _deliver(
        batch: list[tuple[Item, asyncio.Future[Result]]],
        results: Sequence[Result | BaseException],
    ) -> None:
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _run(self) -> None:
        assert self._pending is not None
        assert self._wakeup is not None
        pending, wakeup = self._pending, self._wakeup
        loop = asyncio.get_running_loop()
        executor = self._executor
        assert executor is not None
        while True:
            if not pending:
                wakeup.clear()
                await wakeup.wait()
                continue
            batch, rows = self._take(pending, [], 0)
            if rows < self._max_batch_size and self._max_wait > 0:
                deadline = loop.time() + self._max_wait
                while rows < self._max_batch_size:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    wakeup.clear()
                    if not pending:
                        try:
                            await asyncio.wait_for(wakeup.wait(), remaining)
                        except TimeoutError:
                            break
                    batch, rows = self._take(pending, batch, rows)
            items = [item for item, _ in batch]
            try:
                results: Sequence[Result | BaseException] = await loop.run_in_executor(
                    executor, self._process, items
                )
            except Exception as error:
                results = [error] * len(batch)
            self._deliver(batch, results)

    def _take(
        self,
        pending: collections.deque[tuple[Item, asyncio.Future[Result]]],
        batch: list[tuple[Item, asyncio.Future[Result]]],
        rows: int,
    ) -> tuple[list[tuple[Item, asyncio.Future[Result]]], int]:
        while pending:
            size = self._size(pending[0][0])
            if batch and rows + size > self._max_batch_size:
                break
            entry = pending.popleft()
            if entry[1].done():  # the client went away
                continue
            batch.append(entry)
            rows += size
        return batch, rows

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        self._closing = True
        if self._inline:
            if self._pending:
                self._flush()
        elif self._pending is not None:
            while self._pending:
                await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)
