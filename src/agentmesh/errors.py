"""The AgentMesh exception tree.

Every error AgentMesh raises on purpose derives from :class:`AgentMeshError`; adapters
translate driver errors (nats, asyncpg, aiokafka, boto ...) at their edge, so callers
never see a raw driver exception::

    AgentMeshError
    ├── ConfigError                 settings are missing or inconsistent
    ├── ValidationError             bad input (ids, fields, payloads)
    │   ├── PolicyError             a safety policy that cannot be used (names line and field)
    │   ├── EnvelopeError           bytes that are not a valid envelope
    │   ├── PayloadTooLarge         an envelope bigger than the transport accepts
    │   ├── UnsafeUrl               a URL to a private/loopback/link-local/metadata address
    │   └── UpdateRejected          a federated update a round refuses (says why)
    ├── NotFound
    ├── Conflict
    │   ├── ConcurrencyError        optimistic concurrency check failed
    │   ├── ApprovalConflict        decided already, past its deadline, or other arguments
    │   └── ProposalRejected        the replicated state machine refused a proposal
    ├── Forbidden                   authenticated but not allowed (or wrong tenant)
    │   └── TenantForbidden         a resource of another tenant
    ├── Unauthorized                missing or invalid credentials
    ├── InvalidTransition           a state machine refused a transition
    ├── RequestTimeout              request/reply got no answer in time
    ├── NoResponders                request/reply to a subject nobody serves
    ├── NotSupported                a transport/store lacks a capability
    ├── QuotaExceeded               a tenant limit is used up (retry after ``retry_after`` s)
    ├── BrokerUnavailable           the broker (or store) cannot be reached
    │   └── ConsensusUnavailable    a Raft group has no leader or lost the entry (retry)
    ├── CorruptEventError           a stored event cannot be decoded (names its position)
    ├── RelayInterrupted            the outbox relay stopped at an injected fault (tests)
    ├── RemoteError                 an agent answered a request with an error
    ├── TaskPaused                  a handler's task waits for an approval (store state)
    ├── TaskTimeout                 a handler ran longer than its task's timeout
    ├── SafetyRejected              a safety rule denied a request or its answer
    ├── RetryableError              raised by a handler: try again
    ├── NonRetryableError           raised by a handler: do not try again
    │   ├── SwarmJobFailed          a swarm job ended with failed tasks
    │   └── TaskFailedInPool        a decentralized pool committed the task as failed
    ├── MaxRetriesExceededError     every attempt of a retried call failed
    ├── CircuitBreakerOpenException a call refused while the circuit is open
    ├── BulkheadFullError           every slot and queue place of a bulkhead is taken
    ├── BulkheadTimeoutError        a call waited for a slot, or ran, too long
    ├── OrchestrationFailed         subtasks failed beyond the orchestrator's policy
    │   └── OrchestrationTimeout    the orchestration ran out of time
    ├── CommandFailed               a hierarchical command failed below
    ├── AuctionFailed               no bid, or every awarded bidder failed
    ├── LLMError                    a language-model call failed (agentmesh.llm)
    │   ├── LLMRateLimited          429/503: retried after ``retry_after`` (or backoff)
    │   ├── LLMUnavailable          5xx, network error or per-call timeout
    │   ├── LLMResponseInvalid      a body or stream the API did not promise
    │   ├── LLMRequestRejected      any other 4xx: the provider's message (also a
    │   │                           NonRetryableError: never retried)
    │   └── LLMOutputInvalid        structured output still invalid after the repair
    │                               round (also a NonRetryableError)
    └── LLMBudgetExceeded           a task's token budget, cost ceiling, tool rounds or
                                    LLM call depth ran out (a NonRetryableError)

(``DecryptionError`` in :mod:`agentmesh.security.crypto` is a ``ValidationError``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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


class PolicyError(ValidationError):
    """A safety policy that cannot be used; the message names the field (and its line
    when the policy came from a file), e.g. ``line 5: limits.max_depth: must be ...``."""

    code = "INVALID_SAFETY_POLICY"

    def __init__(self, message: str, *, field: str = "", line: int | None = None) -> None:
        where = " ".join(
            part for part in (f"line {line}:" if line else "", f"{field}:" if field else "") if part
        )
        super().__init__(f"{where} {message}".strip())
        self.field = field
        self.line = line


class UnsafeUrl(ValidationError):
    """A URL the mesh refuses to call: not http(s), or a private, loopback, link-local or
    cloud-metadata address (see :func:`agentmesh.security.ssrf.check_public_url`)."""

    code = "UNSAFE_URL"


class SafetyRejected(AgentMeshError):
    """A safety rule denied a request (or the answer to it); the message names the rule."""

    code = "SAFETY_REJECTED"


class EnvelopeError(ValidationError):
    """Raised when bytes cannot be decoded into an :class:`~agentmesh.envelope.Envelope`."""

    code = "INVALID_ENVELOPE"


class PayloadTooLarge(ValidationError):
    code = "PAYLOAD_TOO_LARGE"


class NotFound(AgentMeshError, LookupError):
    code = "NOT_FOUND"


class Conflict(AgentMeshError):
    code = "CONFLICT"


class ApprovalConflict(Conflict):
    """An approval that cannot be decided: decided already, past its deadline, or bound
    to other arguments than the ones the approver saw."""

    code = "APPROVAL_CONFLICT"


class ConcurrencyError(Conflict):
    code = "CONCURRENCY_CONFLICT"


class Forbidden(AgentMeshError):
    code = "FORBIDDEN"


class TenantForbidden(Forbidden):
    code = "TENANT_FORBIDDEN"


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


class QuotaExceeded(AgentMeshError):
    """A tenant limit (``max_messages_per_hour`` ...) is used up; ``retry_after`` says in
    how many seconds a retry can succeed."""

    code = "QUOTA_EXCEEDED"

    def __init__(self, message: str, *, retry_after: float = 60.0, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class NotSupported(AgentMeshError):
    """A capability the implementation does not declare (see TransportCapabilities)."""

    code = "NOT_SUPPORTED"


class RetryableError(AgentMeshError):
    """Raise (or subclass) to ask for a retry."""

    code = "RETRYABLE"


class NonRetryableError(AgentMeshError):
    """Raise (or subclass) to stop retrying at once."""

    code = "NON_RETRYABLE"


class MaxRetriesExceededError(AgentMeshError):
    """Every attempt failed; ``last_error`` is the final attempt's exception."""

    code = "MAX_RETRIES_EXCEEDED"

    def __init__(self, max_attempts: int, last_error: BaseException, total_duration_ms: float):
        super().__init__(f"max attempts ({max_attempts}) exceeded: {last_error!r}")
        self.max_attempts = max_attempts
        self.last_error = last_error
        self.total_duration_ms = total_duration_ms


class CircuitBreakerOpenException(AgentMeshError):
    """A call was refused because the circuit is OPEN. ``retry_after`` is in seconds."""

    code = "CIRCUIT_OPEN"

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit breaker '{name}' is open; retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


class BulkheadFullError(AgentMeshError):
    """Every slot is busy and the queue is full (or the bulkhead is shut down)."""

    code = "BULKHEAD_FULL"


class BulkheadTimeoutError(AgentMeshError, TimeoutError):
    """A call waited too long for a slot, or ran longer than ``timeout_ms``."""

    code = "BULKHEAD_TIMEOUT"


class CorruptEventError(AgentMeshError):
    """A stored event cannot be decoded; names the global position (never skipped)."""

    code = "CORRUPT_EVENT"

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"event at position {position}: {reason}")
        self.position = position


class TaskPaused(AgentMeshError):
    """Raised by a handler whose task now waits in the store (an approval gate of one of
    its tool calls): the delivery is acked, no outcome is published, and the control
    plane offers the task again once a person decides."""

    code = "TASK_PAUSED"


class RelayInterrupted(AgentMeshError):
    """The outbox relay stopped where its ``fault`` hook asked it to, as a killed process."""

    code = "RELAY_INTERRUPTED"


class RemoteError(AgentMeshError):
    """An agent answered a request with an error."""

    code = "REMOTE_ERROR"


class CommandFailed(AgentMeshError):
    code = "COMMAND_FAILED"


class AuctionFailed(AgentMeshError):
    """No bid, or every awarded bidder failed or stayed silent."""

    code = "AUCTION_FAILED"

    def __init__(self, message: str, bids: Sequence[Any] = (), failed: Sequence[Any] = ()):
        super().__init__(message)
        self.bids = list(bids)
        self.failed_awards = list(failed)


class OrchestrationFailed(AgentMeshError):
    """Subtasks failed beyond the policy; ``partial`` holds what did complete."""

    code = "ORCHESTRATION_FAILED"

    def __init__(self, message: str, partial: Any) -> None:
        super().__init__(message)
        self.partial = partial


class SwarmJobFailed(NonRetryableError):
    """A job ended with failed tasks (not retried: the swarm already retried them)."""

    code = "SWARM_JOB_FAILED"


class TaskTimeout(AgentMeshError, TimeoutError):
    """The handler ran longer than the task's ``timeout_seconds``."""

    code = "TASK_TIMEOUT"


class OrchestrationTimeout(OrchestrationFailed):
    code = "ORCHESTRATION_TIMEOUT"


class LLMError(AgentMeshError):
    """A call to a language model failed; the message names the provider (never a key)."""

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


class LLMRequestRejected(LLMError, NonRetryableError):
    """Never retried, by the provider wrapper nor by the task runtime."""

    code = "LLM_REQUEST_REJECTED"


class LLMUnavailable(LLMError):
    code = "LLM_UNAVAILABLE"
    retryable = True


class LLMResponseInvalid(LLMError):
    code = "LLM_RESPONSE_INVALID"
    retryable = True


class LLMOutputInvalid(LLMError, NonRetryableError):
    code = "LLM_OUTPUT_INVALID"


class LLMBudgetExceeded(NonRetryableError):
    """Not retried: the same task would hit the same ceiling again."""

    code = "LLM_BUDGET_EXCEEDED"


class ConsensusUnavailable(BrokerUnavailable):
    """A Raft group could not commit a proposal now (no leader, leader changed, queue
    full); the outcome of the proposal is unknown or negative, so it may be retried."""

    code = "CONSENSUS_UNAVAILABLE"


class ProposalRejected(Conflict):
    """The replicated state machine refused a committed proposal; the message is its reason."""

    code = "PROPOSAL_REJECTED"


class TaskFailedInPool(NonRetryableError):
    """The pool committed a failed outcome for the task (its node already ran it)."""

    code = "TASK_FAILED"
