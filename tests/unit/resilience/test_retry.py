"""RetryPolicy: backoff table, classification, exhaustion, timeouts, presets."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmesh.errors import (
    BrokerUnavailable,
    MaxRetriesExceededError,
    NonRetryableError,
    RequestTimeout,
    RetryableError,
    ValidationError,
)
from agentmesh.resilience import RetryConfig, RetryPolicy, RetryResult
from tests.unit.resilience.clock import FakeClock


class Recorder:
    """A fake sleep that advances a fake clock and records each delay (seconds)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)


def policy(config: RetryConfig, **kw: Any) -> tuple[RetryPolicy, Recorder]:
    clock = FakeClock()
    sleep = Recorder(clock)
    return RetryPolicy(config, clock=clock, sleep=sleep, **kw), sleep


def failing(errors: list[BaseException], value: object = "ok") -> Callable[[], Any]:
    """An async operation that raises the given errors in turn, then returns ``value``."""
    pending = list(errors)

    async def op() -> object:
        if pending:
            raise pending.pop(0)
        return value

    return op


NO_JITTER = RetryConfig(jitter_enabled=False)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("max_attempts", 3),
        ("base_delay_ms", 100),
        ("max_delay_ms", 30000),
        ("backoff_multiplier", 2.0),
        ("jitter_enabled", True),
        ("jitter_range_ms", 100),
    ],
)
def test_config_defaults(field: str, expected: object) -> None:
    assert getattr(RetryConfig(), field) == expected


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(1, 100), (2, 200), (3, 400), (4, 800), (9, 25600), (10, 30000), (60, 30000), (5000, 30000)],
)
def test_backoff_table_without_jitter(attempt: int, delay: float) -> None:
    assert NO_JITTER.calculate_delay(attempt) == delay


@settings(deadline=None)
@given(attempt=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_jitter_stays_within_range_and_non_negative(attempt: int, seed: int) -> None:
    cfg = RetryConfig()
    delay = cfg.calculate_delay(attempt, random.Random(seed))
    base = cfg.base_delay_for(attempt)
    assert delay >= 0
    assert max(0.0, base - 100) <= delay <= base + 100


def test_jitter_floor_at_zero() -> None:
    cfg = RetryConfig(base_delay_ms=10, jitter_range_ms=100)

    class Low(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return a

    assert cfg.calculate_delay(1, Low()) == 0.0


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (ConnectionError(), True),
        (TimeoutError(), True),
        (OSError(), True),
        (RetryableError("x"), True),
        (BrokerUnavailable("x"), True),
        (RequestTimeout("x"), True),
        (ValueError(), False),
        (KeyError(), False),
        (TypeError(), False),
        (NonRetryableError("x"), False),
        (ValidationError("x"), False),
        (RuntimeError(), False),
    ],
)
def test_default_classification(error: BaseException, retryable: bool) -> None:
    assert RetryConfig().is_retryable(error) is retryable


async def test_readme_usage() -> None:
    attempts = 0

    async def flaky_operation() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("blip")
        return "ok"

    policy_ = RetryPolicy(RetryConfig(max_attempts=3, base_delay_ms=100))
    result = await policy_.execute(flaky_operation)
    assert isinstance(result, RetryResult)
    assert (result.success, result.result, result.error, result.attempts) == (True, "ok", None, 3)


async def test_success_after_failures_sleeps_the_backoff() -> None:
    p, sleep = policy(RetryConfig(max_attempts=4, jitter_enabled=False))
    result = await p.execute(failing([ConnectionError(), OSError(), TimeoutError()]))
    assert result.success
    assert result.attempts == 4
    assert sleep.delays == [0.1, 0.2, 0.4]
    assert result.total_duration_ms == pytest.approx(700)


async def test_exhaustion_returns_max_retries_exceeded() -> None:
    p, sleep = policy(NO_JITTER, name="t-exhaust")
    last = ConnectionError("third")
    result = await p.execute(failing([ConnectionError(), ConnectionError(), last]))
    assert not result.success
    assert result.attempts == 3
    assert result.result is None
    assert isinstance(result.error, MaxRetriesExceededError)
    assert result.error.max_attempts == 3
    assert result.error.last_error is last
    assert result.error.total_duration_ms == pytest.approx(300)
    assert sleep.delays == [0.1, 0.2]
    assert p.get_statistics()["max_attempts_reached"] == 1


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("k"), NonRetryableError("n")])
async def test_non_retryable_returns_the_error_after_one_attempt(error: BaseException) -> None:
    p, sleep = policy(NO_JITTER)
    result = await p.execute(failing([error]))
    assert (result.success, result.error, result.attempts, sleep.delays) == (False, error, 1, [])


async def test_custom_retryable_list() -> None:
    cfg = RetryConfig(jitter_enabled=False, retryable_exceptions=(RuntimeError,))
    p, _ = policy(cfg)
    result = await p.execute(failing([RuntimeError(), RuntimeError()]))
    assert result.success
    assert result.attempts == 3


async def test_timeout_stops_at_once_without_retrying() -> None:
    p = RetryPolicy(RetryConfig(max_attempts=5, base_delay_ms=1))
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5)

    result = await p.execute(slow, timeout_ms=20)
    assert (result.success, result.attempts, calls) == (False, 1, 1)
    assert isinstance(result.error, TimeoutError)
    typed = await p.execute_with_timeout(20, slow)
    assert typed.attempts == 1
    assert isinstance(typed.error, TimeoutError)


async def test_timeout_error_raised_by_the_operation_is_retried() -> None:
    p, _ = policy(NO_JITTER)
    result = await p.execute(failing([TimeoutError("remote")]), timeout_ms=10_000)
    assert result.success
    assert result.attempts == 2


async def test_arguments_are_forwarded_and_sync_functions_work() -> None:
    p, _ = policy(NO_JITTER)
    result = await p.execute(lambda a, b=0: a + b, 1, b=2)
    assert result.result == 3


async def test_call_raises_the_final_error() -> None:
    p, _ = policy(NO_JITTER)
    with pytest.raises(MaxRetriesExceededError):
        await p.call(failing([OSError()] * 3))
    assert await p.call(failing([OSError()], value=7)) == 7


async def test_on_retry_sees_each_failed_attempt() -> None:
    seen: list[tuple[int, str, float]] = []
    p, _ = policy(NO_JITTER, on_retry=lambda n, e, d: seen.append((n, type(e).__name__, d)))
    await p.execute(failing([ConnectionError(), OSError()]))
    assert seen == [(1, "ConnectionError", 100), (2, "OSError", 200)]


async def test_cancellation_propagates() -> None:
    p = RetryPolicy()
    task = asyncio.create_task(p.execute(asyncio.sleep, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("factory", "attempts", "base", "cap", "jitter"),
    [
        (RetryPolicy.for_database, 3, 50, 2000, True),
        (RetryPolicy.for_external_api, 4, 200, 5000, True),
        (RetryPolicy.for_message_broker, 5, 100, 10000, True),
        (RetryPolicy.aggressive, 3, 10, 500, False),
        (RetryPolicy.conservative, 3, 500, 30000, True),
    ],
)
def test_presets(factory: Any, attempts: int, base: int, cap: int, jitter: bool) -> None:
    cfg = factory().config
    got = (cfg.max_attempts, cfg.base_delay_ms, cfg.max_delay_ms, cfg.jitter_enabled)
    assert got == (attempts, base, cap, jitter)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base_delay_ms": -1}, {"backoff_multiplier": 0.5}]
)
def test_config_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetryConfig(**kwargs)
