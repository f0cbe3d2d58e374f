"""Bulkhead: cap how much work one component may run and queue at once.

::

    bulkhead = Bulkhead(BulkheadConfig(max_concurrent=10, max_queue=50))
    result = await bulkhead.execute(my_task)           # sync functions run in a thread

* At most ``max_concurrent`` calls run; up to ``max_queue`` more wait for a slot.
* A call arriving when every slot is busy and the queue is full raises
  :class:`BulkheadFullError` at once.
* A call that waited ``queue_timeout_ms`` for a slot, or ran longer than ``timeout_ms``,
  raises :class:`BulkheadTimeoutError` (an async call is cancelled; a sync call's thread
  cannot be interrupted, it keeps its slot until it returns).
* ``async with Bulkhead(...) as b:`` shuts it down on exit; after :meth:`shutdown` new
  calls raise :class:`BulkheadFullError`.

Rejections and timeouts bump ``agentmesh_critical_errors_total{error_type, component=name}``
with ``error_type`` ``bulkhead_full`` or ``bulkhead_timeout``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from agentmesh.errors import BulkheadFullError, BulkheadTimeoutError, ValidationError
from agentmesh.observability import metrics
from agentmesh.resilience._invoke import Clock

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BulkheadConfig:
    """Bulkhead settings (defaults: 10 running, 50 queued, 30 s to run, 5 s to wait for a
    slot). ``None`` timeouts mean no limit."""

    max_concurrent: int = 10
    max_queue: int = 50
    timeout_ms: float | None = 30000
    queue_timeout_ms: float | None = 5000

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ValidationError("max_concurrent must be >= 1")
        if self.max_queue < 0:
            raise ValidationError("max_queue must be >= 0")


@dataclass(slots=True)
class BulkheadStats:
    """Counters of one bulkhead (see :meth:`Bulkhead.get_stats`)."""

    total_submitted: int = 0
    completed: int = 0
    failed: int = 0
    timed_out: int = 0
    rejected: int = 0
    current_executing: int = 0
    current_queued: int = 0
    executions: int = 0
    total_execution_ms: float = 0.0
    min_execution_ms: float | None = None
    max_execution_ms: float | None = None

    @property
    def avg_execution_ms(self) -> float:
        return self.total_execution_ms / self.executions if self.executions else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_submitted": self.total_submitted,
            "completed": self.completed,
            "failed": self.failed,
            "timed_out": self.timed_out,
            "rejected": self.rejected,
            "current_executing": self.current_executing,
            "current_queued": self.current_queued,
            "avg_execution_ms": self.avg_execution_ms,
            "min_execution_ms": self.min_execution_ms,
            "max_execution_ms": self.max_execution_ms,
        }


class Bulkhead:
    """Concurrency and queue limits around one component (for example one agent)."""

    def __init__(
        self,
        config: BulkheadConfig | None = None,
        *,
        name: str = "default",
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config or BulkheadConfig()
        self.name = name
        self._clock = clock
        self._slots = asyncio.Semaphore(self.config.max_concurrent)
        self._stats = BulkheadStats()
        self._executor: ThreadPoolExecutor | None = None
        self._async_cache: dict[object, bool] = {}
        self._closed = False

    # -- presets ------------------------------------------------------------------------
    @classmethod
    def for_database(cls, max_concurrent: int = 20, *, name: str = "database") -> Bulkhead:
        """20 running, 1000 queued."""
        return cls(BulkheadConfig(max_concurrent=max_concurrent, max_queue=1000), name=name)

    @classmethod
    def for_external_api(cls, max_concurrent: int = 50, *, name: str = "external_api") -> Bulkhead:
        """50 running, 500 queued, 30 s per call."""
        config = BulkheadConfig(max_concurrent=max_concurrent, max_queue=500, timeout_ms=30000)
        return cls(config, name=name)

    @classmethod
    def for_message_broker(
        cls, max_concurrent: int = 100, *, name: str = "message_broker"
    ) -> Bulkhead:
        """100 running, 2000 queued."""
        return cls(BulkheadConfig(max_concurrent=max_concurrent, max_queue=2000), name=name)

    # -- queries ------------------------------------------------------------------------
    def get_stats(self) -> dict[str, Any]:
        """Stats: submitted/completed/failed/timed_out/rejected, current
        executing and queued, and avg/min/max execution ms."""
        return self._stats.to_dict()

    @property
    def stats(self) -> BulkheadStats:
        return self._stats

    @property
    def is_shut_down(self) -> bool:
        return self._closed

    # -- calls --------------------------------------------------------------------------
    @overload
    async def execute(
        self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...
    @overload
    async def execute(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` inside the bulkhead and return its result."""
        stats = self._stats
        stats.total_submitted += 1
        if self._closed:
            self._reject("bulkhead is shut down")
        if self._slots.locked():
            if stats.current_queued >= self.config.max_queue:
                self._reject(
                    f"bulkhead '{self.name}' full: {stats.current_executing} running, "
                    f"{stats.current_queued} queued"
                )
            await self._wait_in_queue()
        else:
            await self._slots.acquire()
        try:
            return await self._run(fn, args, kwargs)
        finally:
            self._slots.release()

    call = execute
    """Alias of :meth:`execute`."""

    async def shutdown(self, *, wait: bool = True) -> None:
        """Refuse new calls; release the thread pool (waiting for its threads if ``wait``)."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            if wait:
                await asyncio.get_running_loop().run_in_executor(
                    None, functools.partial(executor.shutdown, wait=True)
                )
            else:
                executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> Bulkhead:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    # -- internals ----------------------------------------------------------------------
    def _reject(self, reason: str) -> None:
        self._stats.rejected += 1
        metrics.critical_errors.labels(error_type="bulkhead_full", component=self.name).inc()
        raise BulkheadFullError(reason)

    def _timed_out(self, reason: str) -> BulkheadTimeoutError:
        self._stats.timed_out += 1
        metrics.critical_errors.labels(error_type="bulkhead_timeout", component=self.name).inc()
        return BulkheadTimeoutError(reason)

    async def _wait_in_queue(self) -> None:
        self._stats.current_queued += 1
        timeout = self.config.queue_timeout_ms
        try:
            async with asyncio.timeout(timeout / 1000 if timeout is not None else None):
                await self._slots.acquire()
        except TimeoutError:
            raise self._timed_out(
                f"bulkhead '{self.name}': no slot within {timeout:g} ms"
            ) from None
        finally:
            self._stats.current_queued -= 1

    async def _run(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        stats = self._stats
        stats.current_executing += 1
        started = self._clock()
        timeout = self.config.timeout_ms
        try:
            if timeout is None:  # the common hot path: no timer to arm
                result = await self._start(fn, args, kwargs)
            else:
                deadline = asyncio.timeout(timeout / 1000)
                try:
                    async with deadline:
                        result = await self._start(fn, args, kwargs)
                except TimeoutError:
                    if deadline.expired():
                        raise self._timed_out(
                            f"bulkhead '{self.name}': call exceeded {timeout:g} ms"
                        ) from None
                    raise
        except BulkheadTimeoutError:
            raise  # counted as timed out, not failed
        except BaseException:
            stats.failed += 1
            raise
        else:
            stats.completed += 1
            return result
        finally:
            stats.current_executing -= 1
            self._observe((self._clock() - started) * 1000)

    async def _start(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        target = fn  # keyed by the function itself: partials and bound methods are new
        while isinstance(target, functools.partial):  # objects on every call
            target = target.func
        target = getattr(target, "__func__", target)
        is_async = self._async_cache.get(target)
        if is_async is None:
            is_async = self._async_cache[target] = inspect.iscoroutinefunction(fn)
        if is_async:
            return await fn(*args, **kwargs)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.config.max_concurrent, thread_name_prefix=f"bulkhead-{self.name}"
            )
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        if inspect.isawaitable(result):  # a sync wrapper that returned a coroutine
            return await result
        return result

    def _observe(self, elapsed_ms: float) -> None:
        stats = self._stats
        stats.executions += 1
        stats.total_execution_ms += elapsed_ms
        if stats.min_execution_ms is None or elapsed_ms < stats.min_execution_ms:
            stats.min_execution_ms = elapsed_ms
        if stats.max_execution_ms is None or elapsed_ms > stats.max_execution_ms:
            stats.max_execution_ms = elapsed_ms
