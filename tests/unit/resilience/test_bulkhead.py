"""Bulkhead limits, timeouts, stats and presets."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from typing import Any

import pytest

from agentmesh.errors import BulkheadFullError, BulkheadTimeoutError
from agentmesh.observability.metrics import REGISTRY
from agentmesh.resilience import Bulkhead, BulkheadConfig
from tests.helpers import eventually


@pytest.mark.parametrize(
    ("field", "expected"),
    [("max_concurrent", 10), ("max_queue", 50), ("timeout_ms", 30000), ("queue_timeout_ms", 5000)],
)
def test_config_defaults(field: str, expected: object) -> None:
    assert getattr(BulkheadConfig(), field) == expected


@pytest.mark.parametrize(
    ("factory", "concurrent", "queue", "timeout_ms"),
    [
        (Bulkhead.for_database, 20, 1000, 30000),
        (Bulkhead.for_external_api, 50, 500, 30000),
        (Bulkhead.for_message_broker, 100, 2000, 30000),
    ],
)
def test_presets(factory: Any, concurrent: int, queue: int, timeout_ms: int) -> None:
    cfg = factory().config
    assert (cfg.max_concurrent, cfg.max_queue, cfg.timeout_ms) == (concurrent, queue, timeout_ms)


async def test_readme_usage() -> None:
    bulkhead = Bulkhead(BulkheadConfig(max_concurrent=10, max_queue=50))

    async def my_task() -> str:
        return "done"

    assert await bulkhead.execute(my_task) == "done"
    assert bulkhead.get_stats()["completed"] == 1


async def test_never_more_than_max_concurrent() -> None:
    bulkhead = Bulkhead(BulkheadConfig(max_concurrent=3, max_queue=100), name="t-cap")
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.002)
        running -= 1

    await asyncio.gather(*(bulkhead.execute(work) for _ in range(30)))
    assert peak == 3
    stats = bulkhead.get_stats()
    assert (stats["total_submitted"], stats["completed"], stats["current_executing"]) == (30, 30, 0)


async def test_full_queue_rejects_at_once() -> None:
    name = "t-full"
    labels = {"error_type": "bulkhead_full", "component": name}
    before = REGISTRY.get_sample_value("agentmesh_critical_errors_total", labels) or 0.0
    bulkhead = Bulkhead(BulkheadConfig(max_concurrent=1, max_queue=1), name=name)
    gate = asyncio.Event()

    async def blocked() -> int:
        await gate.wait()
        return 1

    first = asyncio.create_task(bulkhead.execute(blocked))
    second = asyncio.create_task(bulkhead.execute(blocked))
    await eventually(lambda: bulkhead.get_stats()["current_queued"] == 1, timeout=10)
    assert bulkhead.get_stats()["current_executing"] == 1
    assert bulkhead.get_stats()["current_queued"] == 1
    with pytest.raises(BulkheadFullError):
        await bulkhead.execute(blocked)
    gate.set()
    assert await asyncio.gather(first, second) == [1, 1]
    stats = bulkhead.get_stats()
    assert (stats["rejected"], stats["completed"], stats["total_submitted"]) == (1, 2, 3)
    after = REGISTRY.get_sample_value("agentmesh_critical_errors_total", labels)
    assert after == before + 1


async def test_queue_timeout() -> None:
    bulkhead = Bulkhead(BulkheadConfig(max_concurrent=1, max_queue=5, queue_timeout_ms=20))
    gate = asyncio.Event()
    holder = asyncio.create_task(bulkhead.execute(gate.wait))
    await asyncio.sleep(0)
    with pytest.raises(BulkheadTimeoutError, match="no slot"):
        await bulkhead.execute(asyncio.sleep, 0)
    gate.set()
    await holder
    stats = bulkhead.get_stats()
    assert (stats["timed_out"], stats["current_queued"], stats["completed"]) == (1, 0, 1)


async def test_execution_timeout_cancels_async_call() -> None:
    bulkhead = Bulkhead(BulkheadConfig(timeout_ms=20), name="t-exec-timeout")
    cancelled = False

    async def slow() -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled = True
            raise

    with pytest.raises(BulkheadTimeoutError, match="exceeded"):
        await bulkhead.execute(slow)
    assert cancelled
    stats = bulkhead.get_stats()
    assert (stats["timed_out"], stats["failed"], stats["current_executing"]) == (1, 0, 0)


async def test_timeout_raised_by_the_call_is_a_failure_not_a_bulkhead_timeout() -> None:
    bulkhead = Bulkhead()

    async def own_timeout() -> None:
        raise TimeoutError("downstream")

    with pytest.raises(TimeoutError, match="downstream") as info:
        await bulkhead.execute(own_timeout)
    assert not isinstance(info.value, BulkheadTimeoutError)
    assert (bulkhead.get_stats()["failed"], bulkhead.get_stats()["timed_out"]) == (1, 0)


async def test_errors_propagate_and_count_as_failed() -> None:
    bulkhead = Bulkhead()

    async def bad() -> None:
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        await bulkhead.execute(bad)
    assert bulkhead.get_stats()["failed"] == 1


async def test_sync_functions_run_in_a_worker_thread() -> None:
    async with Bulkhead(name="t-sync") as bulkhead:
        loop_thread = threading.get_ident()

        def blocking(x: int) -> tuple[int, int]:
            time.sleep(0.01)
            return x * 2, threading.get_ident()

        value, thread = await bulkhead.execute(blocking, 21)
        assert value == 42
        assert thread != loop_thread


async def test_execution_time_stats() -> None:
    ticks = iter([0.0, 0.010, 0.010, 0.040, 0.040, 0.060])  # starts and ends, in seconds
    bulkhead = Bulkhead(clock=lambda: next(ticks))

    async def noop() -> None:
        return None

    for _ in range(3):
        await bulkhead.execute(noop)
    stats = bulkhead.get_stats()
    assert stats["min_execution_ms"] == pytest.approx(10)
    assert stats["max_execution_ms"] == pytest.approx(30)
    assert stats["avg_execution_ms"] == pytest.approx(20)


async def test_async_with_shuts_down() -> None:
    async with Bulkhead() as bulkhead:
        assert await bulkhead.execute(lambda: 5) == 5
    assert bulkhead.is_shut_down
    with pytest.raises(BulkheadFullError, match="shut down"):
        await bulkhead.execute(lambda: 5)


async def test_a_new_partial_or_bound_method_per_call_does_not_grow_its_memo() -> None:
    # the agent's safety runner is a fresh functools.partial per request: the memo of which
    # callables are coroutine functions must key on the function, or it grows per request
    class Worker:
        async def run(self, x: int) -> int:
            return x

    worker = Worker()
    async with Bulkhead(name="t-memo") as bulkhead:
        for i in range(50):
            assert await bulkhead.execute(functools.partial(worker.run), i) == i
            assert await bulkhead.execute(worker.run, i) == i
            assert await bulkhead.execute(functools.partial(functools.partial(abs), -i)) == i
        assert len(bulkhead._async_cache) == 2  # Worker.run and abs
