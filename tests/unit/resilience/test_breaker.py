"""Circuit breaker behaviour, driven by a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmesh.errors import CircuitBreakerOpenException
from agentmesh.observability.metrics import REGISTRY
from agentmesh.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerRegistry,
    CircuitState,
)
from tests.unit.resilience.clock import FakeClock


class Boom(Exception):
    pass


async def ok(value: int = 1) -> int:
    return value


async def fail() -> None:
    raise Boom("down")


async def fail_n(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(fail)


def make(name: str, **cfg: Any) -> tuple[CircuitBreaker, FakeClock, list[tuple[str, str]]]:
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        CircuitBreakerConfig(**cfg),
        name=name,
        clock=clock,
        on_state_change=lambda _n, old, new: changes.append((old.value, new.value)),
    )
    return breaker, clock, changes


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("failure_threshold", 5),
        ("recovery_timeout_seconds", 60.0),
        ("success_threshold_half_open", 2),
        ("expected_exception", Exception),
    ],
)
def test_config_defaults(field: str, expected: object) -> None:
    assert getattr(CircuitBreakerConfig(), field) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"recovery_timeout_seconds": -1},
        {"success_threshold_half_open": 0},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreakerConfig(**kwargs)


async def test_readme_usage() -> None:
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=5, recovery_timeout_seconds=60))

    async def my_async_function(a: int, b: int) -> int:
        return a + b

    assert await breaker.execute(my_async_function, 1, 2) == 3
    assert await breaker.call(my_async_function, 3, b=4) == 7
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("failures", "state"),
    [(1, CircuitState.CLOSED), (4, CircuitState.CLOSED), (5, CircuitState.OPEN)],
)
async def test_opens_after_threshold_consecutive_failures(
    failures: int, state: CircuitState
) -> None:
    breaker, _, _ = make("t-open")
    await fail_n(breaker, failures)
    assert breaker.state is state


async def test_success_in_closed_resets_the_count() -> None:
    breaker, _, _ = make("t-reset")
    await fail_n(breaker, 4)
    await breaker.call(ok)
    assert breaker.failure_count == 0
    await fail_n(breaker, 4)
    assert breaker.state is CircuitState.CLOSED


async def test_open_fails_fast_without_calling() -> None:
    breaker, clock, _ = make("t-fast", failure_threshold=1, recovery_timeout_seconds=60)
    await fail_n(breaker, 1)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1

    clock.advance(59.0)
    with pytest.raises(CircuitBreakerOpenException) as info:
        await breaker.call(counted)
    assert calls == 0
    assert info.value.retry_after == pytest.approx(1.0)
    assert info.value.code == "CIRCUIT_OPEN"


async def test_full_cycle_closed_open_half_open_closed() -> None:
    breaker, clock, changes = make("t-cycle", failure_threshold=2, recovery_timeout_seconds=10)
    await fail_n(breaker, 2)
    clock.advance(10.0)
    assert breaker.state is CircuitState.OPEN  # moves only on the next call
    await breaker.call(ok)
    assert breaker.state is CircuitState.HALF_OPEN
    await breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED
    assert (breaker.failure_count, breaker.success_count) == (0, 0)
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_any_failure_in_half_open_reopens() -> None:
    breaker, clock, changes = make("t-reopen", failure_threshold=1, recovery_timeout_seconds=5)
    await fail_n(breaker, 1)
    clock.advance(5.0)
    await breaker.call(ok)  # half-open, one success
    await fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenException):  # the timeout restarted
        await breaker.call(ok)
    assert changes[-1] == ("half_open", "open")


async def test_unexpected_exceptions_pass_through_uncounted() -> None:
    breaker, _, _ = make("t-expected", failure_threshold=1, expected_exception=ConnectionError)

    async def bad_input() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        await breaker.call(bad_input)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0


async def test_cancellation_is_not_a_failure() -> None:
    breaker, _, _ = make("t-cancel", failure_threshold=1)
    task = asyncio.create_task(breaker.call(asyncio.sleep, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.CLOSED


async def test_sync_functions_are_supported() -> None:
    breaker, _, _ = make("t-sync")
    assert await breaker.call(lambda x: x * 2, 21) == 42


async def test_context_manager_counts_the_block() -> None:
    breaker, _, _ = make("t-cm", failure_threshold=2)
    for _ in range(2):
        with pytest.raises(Boom):
            async with breaker:
                raise Boom
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenException):
        async with breaker:
            pytest.fail("the block must not run while open")


async def test_decorator_guards_every_call() -> None:
    breaker, _, _ = make("t-deco", failure_threshold=1)

    @breaker
    async def flaky(x: int) -> int:
        if x < 0:
            raise Boom
        return x

    assert await flaky(3) == 3
    with pytest.raises(Boom):
        await flaky(-1)
    with pytest.raises(CircuitBreakerOpenException):
        await flaky(3)
    assert flaky.__name__ == "flaky"


async def test_metrics_dict_keys_and_values() -> None:
    breaker, clock, _ = make("t-metrics", failure_threshold=3, recovery_timeout_seconds=7)
    await fail_n(breaker, 1)
    assert breaker.get_metrics() == {
        "name": "t-metrics",
        "state": "closed",
        "failure_count": 1,
        "success_count": 0,
        "last_failure_time": clock.now,
        "failure_threshold": 3,
        "recovery_timeout_seconds": 7,
    }


async def test_prometheus_metrics_follow_state() -> None:
    name = "t-prom"
    labels = {"error_type": "circuit_open", "component": name}
    before = REGISTRY.get_sample_value("agentmesh_critical_errors_total", labels) or 0.0
    breaker, _, _ = make(name, failure_threshold=2)
    await breaker.call(ok)
    await fail_n(breaker, 2)
    after = REGISTRY.get_sample_value("agentmesh_critical_errors_total", labels)
    assert after == before + 1
    rate = REGISTRY.get_sample_value("agentmesh_error_rate", {"component": name})
    assert rate == pytest.approx(2 / 3)


def test_operator_reset_and_force_open() -> None:
    breaker, _, changes = make("t-ops")
    breaker.force_open()
    assert breaker.state is CircuitState.OPEN
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert changes == [("closed", "open"), ("open", "closed")]


class Model:
    """A reference model of the spec's state machine (no clock: time jumps are explicit)."""

    def __init__(self, threshold: int, successes: int) -> None:
        self.threshold, self.successes = threshold, successes
        self.state, self.fails, self.oks = "closed", 0, 0

    def step(self, op: str) -> None:
        if op == "wait":
            if self.state == "open":
                self.state, self.oks = "half_open", 0
            return
        if self.state == "open":
            return  # rejected
        if op == "ok":
            if self.state == "closed":
                self.fails = 0
            else:
                self.oks += 1
                if self.oks >= self.successes:
                    self.state, self.fails, self.oks = "closed", 0, 0
        elif self.state == "closed":
            self.fails += 1
            if self.fails >= self.threshold:
                self.state = "open"
        else:
            self.state = "open"


@settings(deadline=None)
@given(
    threshold=st.integers(1, 4),
    successes=st.integers(1, 3),
    ops=st.lists(st.sampled_from(["ok", "fail", "wait"]), max_size=40),
)
async def test_matches_reference_model(threshold: int, successes: int, ops: list[str]) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        CircuitBreakerConfig(
            failure_threshold=threshold,
            success_threshold_half_open=successes,
            recovery_timeout_seconds=1,
        ),
        name="t-model",
        clock=clock,
    )
    model = Model(threshold, successes)
    for op in ops:
        if op == "wait":
            clock.advance(1.0)
            model.step("wait")
            if breaker.state is CircuitState.OPEN:
                breaker.before_call()  # the first call after the timeout moves it on
            continue
        was_open = breaker.state is CircuitState.OPEN
        try:
            await breaker.call(ok if op == "ok" else fail)
        except CircuitBreakerOpenException:
            assert was_open
        except Boom:
            pass
        model.step(op)
        assert breaker.state.value == model.state


async def test_registry_one_breaker_per_downstream() -> None:
    clock = FakeClock()
    changes: list[tuple[str, str, str]] = []
    registry = CircuitBreakerRegistry(
        CircuitBreakerConfig(failure_threshold=1),
        clock=clock,
        on_state_change=lambda n, old, new: changes.append((n, old.value, new.value)),
    )
    broker = registry.get("t-reg-broker")
    assert registry.get("t-reg-broker") is broker
    store = registry.get("t-reg-store", CircuitBreakerConfig(failure_threshold=3))
    assert store.config.failure_threshold == 3
    await fail_n(broker, 1)
    assert registry.open_circuits() == ["t-reg-broker"]
    assert changes == [("t-reg-broker", "closed", "open")]
    assert [m["name"] for m in registry.get_metrics()] == ["t-reg-broker", "t-reg-store"]
    assert "t-reg-store" in registry
