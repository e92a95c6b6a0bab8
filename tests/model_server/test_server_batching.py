"""Adaptive batching: concurrent requests are joined into one predict call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from model_server.batching import AdaptiveBatcher


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        time.sleep(self.delay)
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


def test_concurrent_requests_share_a_batch() -> None:
    recorder = Recorder()

    async def main() -> list[int]:
        batcher = AdaptiveBatcher(recorder, max_batch_size=100, max_wait=0.05)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.close()
        return results

    assert asyncio.run(main()) == [i * 10 for i in range(10)]
    assert recorder.batches == [list(range(10))]


def test_max_batch_size_by_rows() -> None:
    recorder = Recorder()

    async def main() -> None:
        batcher = AdaptiveBatcher(recorder, max_batch_size=4, max_wait=0.05, size=lambda _: 2)
        await asyncio.gather(*(batcher.submit(i) for i in range(6)))
        await batcher.close()

    asyncio.run(main())
    assert [len(b) for b in recorder.batches] == [2, 2, 2]


def test_requests_arriving_during_predict_join_the_next_batch() -> None:
    recorder = Recorder(delay=0.05)

    async def main() -> None:
        batcher = AdaptiveBatcher(recorder, max_batch_size=100, max_wait=0.0)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.01)  # the first batch is predicting now
        await asyncio.gather(first, *(batcher.submit(i) for i in range(1, 8)))
        await batcher.close()

    asyncio.run(main())
    assert recorder.batches == [[0], list(range(1, 8))]


def test_max_wait_flushes_a_partial_batch() -> None:
    recorder = Recorder()

    async def main() -> float:
        batcher = AdaptiveBatcher(recorder, max_batch_size=100, max_wait=0.05)
        start = time.perf_counter()
        await batcher.submit(1)
        await batcher.close()
        return time.perf_counter() - start

    assert 0.04 < asyncio.run(main()) < 1.0


def test_an_error_fails_only_its_own_request() -> None:
    async def main() -> list[int | BaseException]:
        batcher = AdaptiveBatcher(Recorder(), max_batch_size=10, max_wait=0.01)
        results = await asyncio.gather(
            batcher.submit(1), batcher.submit(-1), batcher.submit(2), return_exceptions=True
        )
        await batcher.close()
        return results

    one, bad, two = asyncio.run(main())
    assert (one, two) == (10, 20)
    assert isinstance(bad, ValueError)


def test_queue_is_created_in_the_running_loop() -> None:
    batcher = AdaptiveBatcher(Recorder(), max_batch_size=2, max_wait=0.0)
    assert batcher._pending is None  # nothing bound to a loop before the first request

    async def main() -> int:
        result = await batcher.submit(3)
        await batcher.close()
        return result

    assert asyncio.run(main()) == 30
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(batcher.submit(1))
