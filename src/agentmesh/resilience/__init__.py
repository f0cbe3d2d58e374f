"""Resilience primitives: circuit breaker, bulkhead, retry with backoff.

::

    from agentmesh.resilience import (
        Bulkhead, BulkheadConfig, CircuitBreaker, CircuitBreakerConfig, RetryConfig, RetryPolicy,
    )

    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=5, recovery_timeout_seconds=60))
    bulkhead = Bulkhead(BulkheadConfig(max_concurrent=10, max_queue=50))
    policy = RetryPolicy(RetryConfig(max_attempts=3, base_delay_ms=100))

    value = await breaker.execute(fetch, "key")
    value = await bulkhead.execute(work)
    outcome = await policy.execute(flaky)        # RetryResult(success, result, error, ...)
"""

from agentmesh.errors import (
    BulkheadFullError,
    BulkheadTimeoutError,
    CircuitBreakerOpenException,
    MaxRetriesExceededError,
    NonRetryableError,
    RetryableError,
)
from agentmesh.resilience.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerRegistry,
    CircuitState,
    StateChangeListener,
)
from agentmesh.resilience.bulkhead import Bulkhead, BulkheadConfig, BulkheadStats
from agentmesh.resilience.retry import (
    DEFAULT_NON_RETRYABLE,
    DEFAULT_RETRYABLE,
    RetryConfig,
    RetryPolicy,
    RetryResult,
)

__all__ = [
    "DEFAULT_NON_RETRYABLE",
    "DEFAULT_RETRYABLE",
    "Bulkhead",
    "BulkheadConfig",
    "BulkheadFullError",
    "BulkheadStats",
    "BulkheadTimeoutError",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerOpenException",
    "CircuitBreakerRegistry",
    "CircuitState",
    "MaxRetriesExceededError",
    "NonRetryableError",
    "RetryConfig",
    "RetryPolicy",
    "RetryResult",
    "RetryableError",
    "StateChangeListener",
]
