"""Retry with exponential backoff and jitter (spec 3.9).

::

    policy = RetryPolicy(RetryConfig(max_attempts=3, base_delay_ms=100))
    result = await policy.execute(flaky_operation)      # a RetryResult, never raises
    if result.success:
        use(result.result)

    value = await policy.call(flaky_operation)          # the value, or raises the error

* The delay before attempt ``n + 1`` is ``min(base * multiplier**(n-1), max)``, plus a
  uniform jitter in ``±jitter_range_ms`` when enabled, floored at 0.
* Retried by default: ``ConnectionError``, ``TimeoutError``, ``OSError``,
  :class:`RetryableError` (so also ``BrokerUnavailable`` and ``RequestTimeout``). Never
  retried: ``ValueError``, ``KeyError``, ``TypeError``, :class:`NonRetryableError`.
  Anything else is not retried either.
* When every attempt failed, ``result.error`` is a :class:`MaxRetriesExceededError`; a
  non-retryable error is returned as it was raised.
* ``timeout_ms`` bounds each attempt; an attempt that times out stops the loop at once.

Presets: :meth:`RetryPolicy.for_database`, :meth:`~RetryPolicy.for_external_api`,
:meth:`~RetryPolicy.for_message_broker`, :meth:`~RetryPolicy.aggressive`,
:meth:`~RetryPolicy.conservative`. Exhausted retries bump
``agentmesh_critical_errors_total{error_type="max_retries_exceeded", component=name}``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from agentmesh.errors import (
    MaxRetriesExceededError,
    NonRetryableError,
    RetryableError,
    ValidationError,
)
from agentmesh.observability import metrics
from agentmesh.resilience._invoke import Clock, invoke

P = ParamSpec("P")
T = TypeVar("T")

ExceptionTypes = tuple[type[BaseException], ...]


DEFAULT_RETRYABLE: ExceptionTypes = (ConnectionError, TimeoutError, OSError, RetryableError)
DEFAULT_NON_RETRYABLE: ExceptionTypes = (ValueError, KeyError, TypeError, NonRetryableError)


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Retry settings; the defaults are the README table (spec 3.9)."""

    max_attempts: int = 3
    base_delay_ms: float = 100
    max_delay_ms: float = 30000
    backoff_multiplier: float = 2.0
    jitter_enabled: bool = True
    jitter_range_ms: float = 100
    retryable_exceptions: ExceptionTypes = DEFAULT_RETRYABLE
    non_retryable_exceptions: ExceptionTypes = DEFAULT_NON_RETRYABLE

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValidationError("max_attempts must be >= 1")
        if self.base_delay_ms < 0 or self.max_delay_ms < 0 or self.jitter_range_ms < 0:
            raise ValidationError("delays must be >= 0")
        if self.backoff_multiplier < 1:
            raise ValidationError("backoff_multiplier must be >= 1")

    def base_delay_for(self, attempt: int) -> float:
        """The delay in ms after failed attempt ``attempt`` (1-based), before jitter."""
        exponent = max(attempt, 1) - 1
        try:
            raw = self.base_delay_ms * self.backoff_multiplier**exponent
        except OverflowError:
            return self.max_delay_ms
        return min(raw, self.max_delay_ms)

    def calculate_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay in ms after failed attempt ``attempt``: backoff ± jitter, floored at 0."""
        delay = self.base_delay_for(attempt)
        if self.jitter_enabled and self.jitter_range_ms > 0:
            draw = (rng or random).uniform(-self.jitter_range_ms, self.jitter_range_ms)
            delay += draw
        return max(0.0, delay)

    def is_retryable(self, exc: BaseException) -> bool:
        """True if ``exc`` should be retried (the never-retried list wins)."""
        if isinstance(exc, self.non_retryable_exceptions):
            return False
        return isinstance(exc, self.retryable_exceptions)


@dataclass(slots=True)
class RetryResult(Generic[T]):
    """The outcome of :meth:`RetryPolicy.execute`."""

    success: bool
    result: T | None = None
    error: BaseException | None = None
    attempts: int = 0
    total_duration_ms: float = 0.0


@dataclass(slots=True)
class _Stats:
    total_executions: int = 0
    successful_executions: int = 0
    failed_executions: int = 0
    total_attempts: int = 0
    max_attempts_reached: int = 0
    retries: int = field(default=0)


RetryListener = Callable[[int, BaseException, float], object]
"""``listener(failed_attempt, error, delay_ms)`` before each backoff sleep."""

Sleep = Callable[[float], Awaitable[object]]


class RetryPolicy:
    """Runs an operation until it succeeds, a non-retryable error occurs, or attempts run out."""

    def __init__(
        self,
        config: RetryConfig | None = None,
        *,
        name: str = "retry",
        on_retry: RetryListener | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or RetryConfig()
        self.name = name
        self._on_retry = on_retry
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._stats = _Stats()

    # -- presets ------------------------------------------------------------------------
    @classmethod
    def for_database(cls, *, name: str = "database") -> RetryPolicy:
        """3 attempts, 50 ms base, 2 s cap."""
        return cls(RetryConfig(max_attempts=3, base_delay_ms=50, max_delay_ms=2000), name=name)

    @classmethod
    def for_external_api(cls, *, name: str = "external_api") -> RetryPolicy:
        """4 attempts, 200 ms base, 5 s cap."""
        return cls(RetryConfig(max_attempts=4, base_delay_ms=200, max_delay_ms=5000), name=name)

    @classmethod
    def for_message_broker(cls, *, name: str = "message_broker") -> RetryPolicy:
        """5 attempts, 100 ms base, 10 s cap."""
        return cls(RetryConfig(max_attempts=5, base_delay_ms=100, max_delay_ms=10000), name=name)

    @classmethod
    def aggressive(cls, *, name: str = "aggressive") -> RetryPolicy:
        """3 attempts, 10 ms base, 500 ms cap, no jitter."""
        config = RetryConfig(
            max_attempts=3, base_delay_ms=10, max_delay_ms=500, jitter_enabled=False
        )
        return cls(config, name=name)

    @classmethod
    def conservative(cls, *, name: str = "conservative") -> RetryPolicy:
        """3 attempts, 500 ms base, 30 s cap."""
        return cls(RetryConfig(max_attempts=3, base_delay_ms=500, max_delay_ms=30000), name=name)

    # -- queries ------------------------------------------------------------------------
    def delay_ms(self, attempt: int) -> float:
        """The backoff (ms, jittered) after failed attempt ``attempt``; for callers that
        schedule retries themselves (e.g. a broker redelivery delay)."""
        return self.config.calculate_delay(attempt, self._rng)

    def get_statistics(self) -> dict[str, float]:
        """Executions, successes, failures, average attempts, exhausted runs."""
        s = self._stats
        return {
            "total_executions": s.total_executions,
            "successful_executions": s.successful_executions,
            "failed_executions": s.failed_executions,
            "average_attempts": s.total_attempts / s.total_executions
            if s.total_executions
            else 0.0,
            "max_attempts_reached": s.max_attempts_reached,
            "retries": s.retries,
        }

    # -- calls --------------------------------------------------------------------------
    @overload
    async def execute(
        self,
        fn: Callable[P, Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> RetryResult[T]: ...
    @overload
    async def execute(
        self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> RetryResult[T]: ...
    async def execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> RetryResult[Any]:
        """Run ``fn(*args, **kwargs)`` (sync or async) with retries; never raises for
        errors of ``fn`` (``CancelledError`` still propagates).

        A ``timeout_ms=<ms>`` keyword bounds each attempt and is not forwarded to ``fn``
        (typed code can use :meth:`execute_with_timeout`).
        """
        timeout_ms = kwargs.pop("timeout_ms", None)
        return await self._execute(fn, args, kwargs, timeout_ms)

    @overload
    async def execute_with_timeout(
        self,
        timeout_ms: float | None,
        fn: Callable[P, Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> RetryResult[T]: ...
    @overload
    async def execute_with_timeout(
        self, timeout_ms: float | None, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> RetryResult[T]: ...
    async def execute_with_timeout(
        self, timeout_ms: float | None, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> RetryResult[Any]:
        """:meth:`execute` with each attempt bounded by ``timeout_ms``; a timed-out attempt
        ends the run at once (``error`` is a ``TimeoutError``)."""
        return await self._execute(fn, args, kwargs, timeout_ms)

    @overload
    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T: ...
    @overload
    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`execute` but returns the value or raises ``result.error``."""
        outcome = await self.execute(fn, *args, **kwargs)
        if not outcome.success:
            assert outcome.error is not None
            raise outcome.error
        return outcome.result

    # -- internals ----------------------------------------------------------------------
    async def _execute(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout_ms: float | None,
    ) -> RetryResult[Any]:
        cfg = self.config
        stats = self._stats
        stats.total_executions += 1
        started = self._clock()

        def elapsed() -> float:
            return (self._clock() - started) * 1000

        attempt = 0
        while True:
            attempt += 1
            deadline = asyncio.timeout(None if timeout_ms is None else timeout_ms / 1000)
            try:
                async with deadline:
                    value = await invoke(fn, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the retry policy classifies every error of the call itself
                if isinstance(exc, TimeoutError) and deadline.expired():
                    timeout = TimeoutError(f"attempt {attempt} timed out after {timeout_ms:g} ms")
                    return self._failed(timeout, attempt, elapsed())
                error: BaseException = exc
            else:
                stats.successful_executions += 1
                stats.total_attempts += attempt
                return RetryResult(True, value, None, attempt, elapsed())

            if not cfg.is_retryable(error):
                return self._failed(error, attempt, elapsed())
            if attempt >= cfg.max_attempts:
                stats.max_attempts_reached += 1
                metrics.critical_errors.labels(
                    error_type="max_retries_exceeded", component=self.name
                ).inc()
                total = elapsed()
                return self._failed(
                    MaxRetriesExceededError(cfg.max_attempts, error, total), attempt, total
                )
            delay = self.delay_ms(attempt)
            stats.retries += 1
            if self._on_retry is not None:
                self._on_retry(attempt, error, delay)
            await self._sleep(delay / 1000)

    def _failed(self, error: BaseException, attempts: int, duration: float) -> RetryResult[Any]:
        self._stats.failed_executions += 1
        self._stats.total_attempts += attempts
        return RetryResult(False, None, error, attempts, duration)
