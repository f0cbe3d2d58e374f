"""Every provider call inside a circuit breaker, retried when the provider says so, under a
per-call timeout, counted in Prometheus metrics and priced::

    provider = ResilientProvider(openai_provider(...), retries=3, timeout=60)

* 429 and 503 (:class:`~agentmesh.errors.LLMRateLimited`), other 5xx, network errors and
  broken responses are retried with exponential backoff (``base_delay`` x2, ``max_delay``
  cap, full jitter); a ``Retry-After`` the provider sent is honored instead (capped at
  ``max_delay``). Any other 4xx fails at once with the provider's message.
* A stream is retried only before its first delta (what was shown cannot be taken back).
* Metrics: ``agentmesh_llm_requests_total{provider,model,outcome}``,
  ``agentmesh_llm_tokens_total{provider,model,direction}``, ``agentmesh_llm_cost_usd_total``
  and ``agentmesh_llm_request_seconds{provider,model}``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Counter, Histogram

from agentmesh.errors import LLMError, LLMUnavailable
from agentmesh.llm.base import (
    ChatMessage,
    Completion,
    CompletionOptions,
    LLMProvider,
    StreamDelta,
    ToolSpec,
    Usage,
)
from agentmesh.observability import tracing
from agentmesh.observability.metrics import REGISTRY
from agentmesh.resilience import CircuitBreaker, CircuitBreakerConfig

T = TypeVar("T")

llm_requests = Counter(
    "agentmesh_llm_requests_total",
    "Model calls by outcome (ok, rate_limited, rejected, unavailable, invalid, timeout, circuit_open)",
    ["provider", "model", "outcome"],
    registry=REGISTRY,
)
llm_tokens = Counter(
    "agentmesh_llm_tokens_total",
    "Tokens sent to (input) and produced by (output) models",
    ["provider", "model", "direction"],
    registry=REGISTRY,
)
llm_cost = Counter(
    "agentmesh_llm_cost_usd_total",
    "Estimated model spend in USD (prices per model are configurable)",
    ["provider", "model"],
    registry=REGISTRY,
)
llm_latency = Histogram(
    "agentmesh_llm_request_seconds",
    "Model call latency (each attempt)",
    ["provider", "model"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input and output tokens."""

    input_per_million: float
    output_per_million: float

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input_per_million
            + usage.output_tokens * self.output_per_million
        ) / 1_000_000


DEFAULT_PRICES: dict[str, Price] = {
    "gemini-1.5-pro": Price(1.25, 5.0),
    "gemini-1.5-flash": Price(0.075, 0.30),
    "gemini-2.0-flash": Price(0.10, 0.40),
    "gemini-2.5-pro": Price(1.25, 10.0),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "gpt-4o": Price(2.50, 10.0),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.0, 8.0),
    "gpt-4.1-mini": Price(0.40, 1.60),
}
"""List prices used when no price is configured for a model (local models cost 0)."""


def price_of(model: str, prices: Mapping[str, Price] | None = None) -> Price:
    """The configured price of ``model`` (longest matching prefix), else 0."""
    table = {**DEFAULT_PRICES, **(prices or {})}
    best = max((k for k in table if model.startswith(k)), key=len, default=None)
    return table[best] if best is not None else Price(0.0, 0.0)


def _outcome(exc: BaseException) -> str:
    from agentmesh.errors import CircuitBreakerOpenException

    if isinstance(exc, CircuitBreakerOpenException):
        return "circuit_open"
    if isinstance(exc, TimeoutError):
        return "timeout"
    code = getattr(exc, "code", "")
    return {
        "LLM_RATE_LIMITED": "rate_limited",
        "LLM_REQUEST_REJECTED": "rejected",
        "LLM_UNAVAILABLE": "unavailable",
        "LLM_RESPONSE_INVALID": "invalid",
    }.get(code, "error")


class ResilientProvider:
    """Wraps an :class:`LLMProvider` with breaker, retries, timeout, metrics and cost."""

    def __init__(
        self,
        inner: LLMProvider,
        *,
        retries: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 60.0,
        breaker: CircuitBreaker | None = None,
        prices: Mapping[str, Price] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.retries = retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker(
            CircuitBreakerConfig(
                failure_threshold=5,
                recovery_timeout_seconds=30.0,
                expected_exception=(LLMUnavailable, TimeoutError),
            ),
            name=f"llm:{inner.name}",
        )
        self.price = price_of(inner.model, prices)
        self.attempts = 0  # calls made to the provider, retries included
        self._sleep = sleep
        self._labels = (inner.name, inner.model)
        # labelled children resolved once: ``labels()`` costs more than the update itself
        name, model = self._labels
        self._ok = llm_requests.labels(name, model, "ok")
        self._latency = llm_latency.labels(name, model)
        self._tokens_in = llm_tokens.labels(name, model, "input")
        self._tokens_out = llm_tokens.labels(name, model, "output")
        self._cost = llm_cost.labels(name, model)

    def delay(self, attempt: int, exc: LLMError) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_delay)
        return random.uniform(0, min(self.base_delay * 2 ** (attempt - 1), self.max_delay))

    def account(self, usage: Usage) -> float:
        """Count tokens and cost of one completed call; returns its cost in USD."""
        self._tokens_in.inc(usage.input_tokens)
        self._tokens_out.inc(usage.output_tokens)
        cost = self.price.cost(usage)
        self._cost.inc(cost)
        return cost

    async def _attempt(self, call: Callable[[], Awaitable[T]]) -> T:
        self.breaker.before_call()
        self.attempts += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                result = await call()
        except BaseException as exc:
            if isinstance(exc, LLMUnavailable | TimeoutError):
                self.breaker.record_failure()
            if isinstance(exc, Exception):
                llm_requests.labels(*self._labels, _outcome(exc)).inc()
            raise
        finally:
            self._latency.observe(time.perf_counter() - started, tracing.exemplar())
        self.breaker.record_success()
        self._ok.inc()
        return result

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(call)
            except TimeoutError:
                if attempt > self.retries:
                    raise LLMUnavailable(
                        f"{self.name}: no answer within {self.timeout:g}s"
                    ) from None
                await self._sleep(self.delay(attempt, LLMUnavailable("timeout")))
            except LLMError as exc:
                if not exc.retryable or attempt > self.retries:
                    raise
                await self._sleep(self.delay(attempt, exc))

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> Completion:
        done = await self._retrying(
            lambda: self.inner.complete(messages, tools=tools, options=options)
        )
        self.account(done.usage)
        return done

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> AsyncIterator[StreamDelta]:
        attempt = 0
        while True:
            attempt += 1
            source = self.inner.stream(messages, tools=tools, options=options)
            started = False
            try:
                first = await self._attempt(lambda: anext(source))  # noqa: B023
                started = True
                yield first
                if first.usage is not None and first.finish_reason is not None:
                    self.account(first.usage)
                async with asyncio.timeout(self.timeout):
                    async for delta in source:
                        yield delta
                        if delta.usage is not None and delta.finish_reason is not None:
                            self.account(delta.usage)
                return
            except TimeoutError:
                if started or attempt > self.retries:
                    raise LLMUnavailable(
                        f"{self.name}: no answer within {self.timeout:g}s"
                    ) from None
                await self._sleep(self.delay(attempt, LLMUnavailable("timeout")))
            except StopAsyncIteration:
                raise LLMUnavailable(f"{self.name}: the stream was empty") from None
            except LLMError as exc:
                if started or not exc.retryable or attempt > self.retries:
                    raise
                await self._sleep(self.delay(attempt, exc))
            finally:
                await _aclose(source)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _aclose(source: AsyncIterator[StreamDelta]) -> None:
    """Close a provider's stream (async generators hold the HTTP response open)."""
    if isinstance(source, AsyncGenerator):
        await source.aclose()
