"""Circuit breaker: stop calling a downstream that keeps failing.

States are ``closed`` (calls pass), ``open`` (calls fail fast with
:class:`CircuitBreakerOpenException`) and ``half_open`` (trial calls pass)::

    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=5, recovery_timeout_seconds=60))
    result = await breaker.execute(fetch, "key")      # or breaker.call(fetch, "key")

    async with breaker:                               # the block counts as one call
        await publish(...)

    @breaker                                          # every call of the function goes through it
    async def query() -> int: ...

* ``failure_threshold`` consecutive failures in CLOSED open the circuit (a success resets
  the count).
* The first call after ``recovery_timeout_seconds`` in OPEN moves to HALF_OPEN.
* Any failure in HALF_OPEN reopens; ``success_threshold_half_open`` successes close it.
* Only exceptions matching ``expected_exception`` count as failures; others pass through
  untouched (and ``asyncio.CancelledError`` is never a failure).

State changes call ``on_state_change(name, old, new)``, bump
``agentmesh_critical_errors_total{error_type="circuit_open", component=name}`` when the
circuit opens, and keep ``agentmesh_error_rate{component=name}`` at the failure ratio of
the last 100 recorded calls.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from agentmesh.errors import (
    CircuitBreakerOpenException,
    ValidationError,
)
from agentmesh.observability import metrics
from agentmesh.resilience._invoke import Clock, invoke

P = ParamSpec("P")
T = TypeVar("T")

_RATE_WINDOW = 100


class CircuitState(StrEnum):
    """The three breaker states; values are lower-case names."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateChangeListener = Callable[[str, CircuitState, CircuitState], object]
"""``listener(breaker_name, old_state, new_state)``; must not block (schedule async work)."""


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """Breaker settings: open after 5 consecutive failures, try again after 60 s, close after
    2 successes in half-open."""

    failure_threshold: int = 5
    recovery_timeout_seconds: float = 60.0
    success_threshold_half_open: int = 2
    expected_exception: type[Exception] | tuple[type[Exception], ...] = Exception

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValidationError("failure_threshold must be >= 1")
        if self.recovery_timeout_seconds < 0:
            raise ValidationError("recovery_timeout_seconds must be >= 0")
        if self.success_threshold_half_open < 1:
            raise ValidationError("success_threshold_half_open must be >= 1")


class CircuitBreaker:
    """One breaker guarding one downstream (a broker, the store, an LLM provider)."""

    def __init__(
        self,
        config: CircuitBreakerConfig | None = None,
        *,
        name: str = "default",
        on_state_change: StateChangeListener | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config or CircuitBreakerConfig()
        self.name = name
        self._on_state_change = on_state_change
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failure_count = 0
        self._success_count = 0
        self._opened_at: float | None = None
        self._last_failure_time: float | None = None
        self._outcomes: deque[bool] = deque(maxlen=_RATE_WINDOW)
        self._window_failures = 0

    # -- queries ------------------------------------------------------------------------
    @property
    def state(self) -> CircuitState:
        """The current state (OPEN becomes HALF_OPEN only on the next call)."""
        return self._state

    @property
    def failure_count(self) -> int:
        return self._failure_count

    @property
    def success_count(self) -> int:
        return self._success_count

    def get_metrics(self) -> dict[str, Any]:
        """name, state, failure_count, success_count, last_failure_time, failure_threshold and
        recovery_timeout_seconds. ``last_failure_time`` is a reading of the breaker clock."""
        return {
            "name": self.name,
            "state": self._state.value,
            "failure_count": self._failure_count,
            "success_count": self._success_count,
            "last_failure_time": self._last_failure_time,
            "failure_threshold": self.config.failure_threshold,
            "recovery_timeout_seconds": self.config.recovery_timeout_seconds,
        }

    # -- calls --------------------------------------------------------------------------
    @overload
    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T: ...
    @overload
    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` (sync or async) through the breaker.

        Raises :class:`CircuitBreakerOpenException` while OPEN, else whatever ``fn`` raises.
        """
        self.before_call()
        try:
            result = await invoke(fn, *args, **kwargs)
        except BaseException as exc:
            self._record_exception(exc)
            raise
        self.record_success()
        return result

    execute = call
    """Alias of :meth:`call` (the README's spelling)."""

    def before_call(self) -> None:
        """Admit one call or raise :class:`CircuitBreakerOpenException`.

        Low-level hook for callers that cannot wrap a callable; pair it with
        :meth:`record_success` / :meth:`record_failure`.
        """
        if self._state is CircuitState.OPEN:
            opened_at = self._opened_at if self._opened_at is not None else self._clock()
            elapsed = self._clock() - opened_at
            if elapsed < self.config.recovery_timeout_seconds:
                raise CircuitBreakerOpenException(
                    self.name, self.config.recovery_timeout_seconds - elapsed
                )
            self._transition(CircuitState.HALF_OPEN)

    def record_success(self) -> None:
        """Count one successful call."""
        self._remember(ok=True)
        if self._state is CircuitState.CLOSED:
            self._failure_count = 0
        elif self._state is CircuitState.HALF_OPEN:
            self._success_count += 1
            if self._success_count >= self.config.success_threshold_half_open:
                self._transition(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """Count one failed call (of the expected kind)."""
        self._remember(ok=False)
        self._last_failure_time = self._clock()
        if self._state is CircuitState.CLOSED:
            self._failure_count += 1
            if self._failure_count >= self.config.failure_threshold:
                self._transition(CircuitState.OPEN)
        elif self._state is CircuitState.HALF_OPEN:
            self._failure_count += 1
            self._transition(CircuitState.OPEN)

    def reset(self) -> None:
        """Force CLOSED with zeroed counters (an operator action)."""
        self._transition(CircuitState.CLOSED)

    def force_open(self) -> None:
        """Force OPEN now (an operator action, or a downstream known to be down)."""
        self._transition(CircuitState.OPEN)

    # -- context manager / decorator ----------------------------------------------------
    async def __aenter__(self) -> CircuitBreaker:
        self.before_call()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.record_success()
        else:
            self._record_exception(exc)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so each call goes through the breaker."""

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return guarded

    # -- internals ----------------------------------------------------------------------
    def _record_exception(self, exc: BaseException) -> None:
        if isinstance(exc, Exception) and isinstance(exc, self.config.expected_exception):
            self.record_failure()

    def _transition(self, new: CircuitState) -> None:
        old = self._state
        self._state = new
        if new is CircuitState.OPEN:
            self._opened_at = self._clock()
            self._success_count = 0
        elif new is CircuitState.HALF_OPEN:
            self._success_count = 0
        else:
            self._failure_count = 0
            self._success_count = 0
            self._opened_at = None
        if old is new:
            return
        if new is CircuitState.OPEN:
            metrics.critical_errors.labels(error_type="circuit_open", component=self.name).inc()
        if self._on_state_change is not None:
            self._on_state_change(self.name, old, new)

    def _remember(self, *, ok: bool) -> None:
        if len(self._outcomes) == _RATE_WINDOW and not self._outcomes[0]:
            self._window_failures -= 1
        self._outcomes.append(ok)
        if not ok:
            self._window_failures += 1
        rate = self._window_failures / len(self._outcomes)
        metrics.error_rate.labels(component=self.name).set(rate)

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._state.value})"


class CircuitBreakerRegistry:
    """One breaker per downstream name (``"broker"``, ``"store"``, ``"llm"`` ...), created
    on first use with a shared config, listener and clock."""

    def __init__(
        self,
        config: CircuitBreakerConfig | None = None,
        *,
        on_state_change: StateChangeListener | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config or CircuitBreakerConfig()
        self._on_state_change = on_state_change
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, config: CircuitBreakerConfig | None = None) -> CircuitBreaker:
        """The breaker called ``name``; ``config`` applies only when it is created."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                config or self.config,
                name=name,
                on_state_change=self._on_state_change,
                clock=self._clock,
            )
            self._breakers[name] = breaker
        return breaker

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def get_metrics(self) -> list[dict[str, Any]]:
        """Every breaker's metrics dict, by name."""
        return [self._breakers[n].get_metrics() for n in sorted(self._breakers)]

    def open_circuits(self) -> list[str]:
        """Names of the breakers currently OPEN (for health endpoints)."""
        return sorted(n for n, b in self._breakers.items() if b.state is CircuitState.OPEN)
