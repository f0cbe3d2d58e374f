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
    ├── QuotaExceeded               a tenant limit is used up (retry after ``retry_after`` s)
    └── BrokerUnavailable           the broker (or store) cannot be reached
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
