"""The AgentMesh exception tree.

Every error AgentMesh raises on purpose derives from :class:`AgentMeshError`; adapters
translate driver errors (nats, asyncpg, aiokafka, boto ...) at their edge, so callers
never see a raw driver exception::

    AgentMeshError
    ├── ConfigError                 settings are missing or inconsistent
    ├── ValidationError             bad input (ids, fields, payloads)
    │   ├── EnvelopeError           bytes that are not a valid envelope
    │   └── PayloadTooLarge         an envelope bigger than the transport accepts
    ├── NotFound
    ├── Conflict
    │   └── ConcurrencyError        optimistic concurrency check failed
    ├── Forbidden                   authenticated but not allowed (or wrong tenant)
    ├── Unauthorized                missing or invalid credentials
    ├── InvalidTransition           a state machine refused a transition
    ├── RequestTimeout              request/reply got no answer in time
    ├── NoResponders                request/reply to a subject nobody serves
    ├── NotSupported                a transport/store lacks a capability
    ├── BrokerUnavailable           the broker (or store) cannot be reached
    ├── LLMError                    a language-model call failed (agentmesh.llm)
    │   ├── LLMRateLimited          429/503: retried after ``retry_after`` (or backoff)
    │   ├── LLMRequestRejected      any other 4xx: the provider's message, never retried
    │   ├── LLMUnavailable          5xx, network error or per-call timeout
    │   ├── LLMResponseInvalid      a body or stream the API did not promise
    │   └── LLMOutputInvalid        structured output still invalid after the repair round
    └── LLMBudgetExceeded           a task's token budget, cost ceiling or tool rounds ran out
"""

from __future__ import annotations


class AgentMeshError(Exception):
    """Root of every error AgentMesh raises on purpose. ``code`` is a stable identifier."""

    code = "AGENTMESH_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConfigError(AgentMeshError):
    code = "CONFIG_ERROR"


class ValidationError(AgentMeshError, ValueError):
    code = "VALIDATION_ERROR"


class EnvelopeError(ValidationError):
    """Raised when bytes cannot be decoded into an :class:`~agentmesh.envelope.Envelope`."""

    code = "INVALID_ENVELOPE"


class PayloadTooLarge(ValidationError):
    code = "PAYLOAD_TOO_LARGE"


class NotFound(AgentMeshError, LookupError):
    code = "NOT_FOUND"


class Conflict(AgentMeshError):
    code = "CONFLICT"


class ConcurrencyError(Conflict):
    code = "CONCURRENCY_CONFLICT"


class Forbidden(AgentMeshError):
    code = "FORBIDDEN"


class Unauthorized(AgentMeshError):
    code = "AUTH_INVALID"


class InvalidTransition(AgentMeshError, ValueError):
    code = "INVALID_TRANSITION"


class RequestTimeout(AgentMeshError, TimeoutError):
    code = "REQUEST_TIMEOUT"


class NoResponders(AgentMeshError):
    code = "NO_RESPONDERS"


class BrokerUnavailable(AgentMeshError, ConnectionError):
    code = "BROKER_UNAVAILABLE"


class NotSupported(AgentMeshError):
    """A capability the implementation does not declare (see TransportCapabilities)."""

    code = "NOT_SUPPORTED"


class LLMError(AgentMeshError):
    """A call to a language model failed; ``provider`` names it (never a key)."""

    code = "LLM_ERROR"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.retry_after = retry_after


class LLMRateLimited(LLMError):
    code = "LLM_RATE_LIMITED"
    retryable = True


class LLMRequestRejected(LLMError, ValueError):
    """Never retried (a ValueError: the task runtime does not retry it either)."""

    code = "LLM_REQUEST_REJECTED"


class LLMUnavailable(LLMError):
    code = "LLM_UNAVAILABLE"
    retryable = True


class LLMResponseInvalid(LLMError):
    code = "LLM_RESPONSE_INVALID"
    retryable = True


class LLMOutputInvalid(LLMError, ValueError):
    code = "LLM_OUTPUT_INVALID"


class LLMBudgetExceeded(AgentMeshError, ValueError):
    """Not retried: the same task would hit the same ceiling again."""

    code = "LLM_BUDGET_EXCEEDED"
