"""Command and query messages (plain frozen dataclasses) of the application layer.

Each command is a :class:`Command` and each query a :class:`Query`, generic in what its
handler answers, so ``await bus.execute(SubmitTask(...))`` is typed ``CommandResult``
without an annotation at the call site.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from agentmesh.domain import HealthMetrics
from agentmesh.domain.task_values import DEFAULT_MAX_ATTEMPTS
from agentmesh.envelope import Envelope
from agentmesh.store.queries import AgentListQuery, Page, StoredMessage

R_co = TypeVar("R_co", covariant=True)


class Command(Generic[R_co]):
    """A request to change state; its handler answers ``R_co``."""

    __slots__ = ()


class Query(Generic[R_co]):
    """A request to read; its handler answers ``R_co``."""

    __slots__ = ()


@dataclass(frozen=True)
class CommandResult:
    """What a command changed: the aggregate id, its new version and the event types."""

    aggregate_id: str
    version: int
    events: tuple[str, ...]


# -- tenants ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateTenant(Command["CommandResult"]):
    name: str
    tenant_id: str | None = None  # default: a new uuid4
    max_agents: int = 100
    max_messages_per_hour: int = 10000


# -- agents ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisterAgent(Command["CommandResult"]):
    tenant_id: str
    agent_id: str
    name: str
    capabilities: Mapping[str, float]
    agent_type: str = "generic"
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    resource_requirements: Mapping[str, Any] | None = None


CreateAgent = RegisterAgent


@dataclass(frozen=True)
class ActivateAgent(Command["CommandResult"]):
    tenant_id: str
    agent_id: str


@dataclass(frozen=True)
class PauseAgent(Command["CommandResult"]):
    tenant_id: str
    agent_id: str
    reason: str = ""


@dataclass(frozen=True)
class ResumeAgent(Command["CommandResult"]):
    tenant_id: str
    agent_id: str


@dataclass(frozen=True)
class TerminateAgent(Command["CommandResult"]):
    tenant_id: str
    agent_id: str
    reason: str = ""


@dataclass(frozen=True)
class RecordHeartbeat(Command["CommandResult"]):
    tenant_id: str
    agent_id: str
    at: datetime | None = None
    metrics: HealthMetrics | None = None


@dataclass(frozen=True)
class SyncAgentCapabilities(Command["CommandResult"]):
    """What a live agent announces (its heartbeat): capabilities it did not have are
    added, higher levels upgrade; nothing is removed."""

    tenant_id: str
    agent_id: str
    capabilities: Mapping[str, int]


@dataclass(frozen=True)
class MarkAgentUnhealthy(Command["CommandResult"]):
    tenant_id: str
    agent_id: str
    reason: str = "Heartbeat timeout"


@dataclass(frozen=True)
class MarkAgentHealthy(Command["CommandResult"]):
    tenant_id: str
    agent_id: str
    metrics: HealthMetrics | None = None


# -- tasks -----------------------------------------------------------------------------
STRATEGY_NEEDS_PLANE = (
    "a routing strategy needs the live registry of a running control plane "
    "(REST, or the CLI with --api-url)"
)


@dataclass(frozen=True)
class SubmitTask(Command["CommandResult"]):
    tenant_id: str
    capability: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    task_type: str | None = None  # default: the capability
    task_id: str | None = None  # default: a new uuid4
    priority: int | str = 3
    timeout_seconds: int = 300
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    source: str = "api"
    to_agent: str | None = None
    """Offer it to this agent's durable inbox instead of the capability queue."""
    strategy: str | None = None
    """A routing strategy needs the live registry: the entry point resolves it into
    ``to_agent`` (a handler without a registry refuses it)."""
    require_vetting: bool = False  # offered to the safety agent first (see commands.safety)


@dataclass(frozen=True)
class GrantQuota(Command["QuotaGrant"]):
    """Take up to ``want`` messages of the tenant's ``max_messages_per_hour`` for a
    submitter that has only the broker; answered with a :class:`QuotaGrant`."""

    tenant_id: str
    want: int = 1


@dataclass(frozen=True)
class QuotaGrant:
    """``granted`` messages taken (0: the hour is used up, retry in ``retry_after``
    seconds); ``limit`` is None for a tenant the store does not know."""

    granted: int
    limit: int | None = None
    retry_after: float = 0.0


@dataclass(frozen=True)
class RecordTask(Command["CommandResult"]):
    """A task offered on the bus by a submitter without the store (``Mesh.submit`` in a
    notebook, a pattern, an agent process): recorded as submitted and offered, with the
    offer envelope it travelled in; nothing is published again."""

    tenant_id: str
    task_id: str
    capability: str
    envelope: Envelope
    subject: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    task_type: str | None = None
    priority: int | str = 3
    timeout_seconds: int = 300
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    submitted_at: datetime | None = None
    parent_task_id: str | None = None


@dataclass(frozen=True)
class RunTask(Command["CommandResult"]):
    """The runtime of ``agent_id`` started the task (attempt ``attempt``): assigned and
    running, on the task and on the agent."""

    tenant_id: str
    task_id: str
    agent_id: str
    attempt: int | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class AssignTask(Command["CommandResult"]):
    tenant_id: str
    task_id: str
    agent_id: str


@dataclass(frozen=True)
class StartTask(Command["CommandResult"]):
    tenant_id: str
    task_id: str
    agent_id: str | None = None


@dataclass(frozen=True)
class CompleteTask(Command["CommandResult"]):
    """A finished task. With ``started_at`` (the runtime's report) a task whose start was
    not recorded yet gets its assigned/running steps first."""

    tenant_id: str
    task_id: str
    result: Mapping[str, Any] = field(default_factory=dict)
    agent_id: str | None = None
    execution_time_ms: float = 0
    started_at: datetime | None = None
    attempt: int | None = None


@dataclass(frozen=True)
class FailTask(Command["CommandResult"]):
    """A failed attempt: retried (re-offered) while retries are left, else dead-lettered."""

    tenant_id: str
    task_id: str
    error: str
    error_code: str = "UNKNOWN"
    agent_id: str | None = None
    retryable: bool = True
    started_at: datetime | None = None
    attempt: int | None = None
    reoffer: bool = True
    """False when the runtime redelivers the task itself (nothing is published again)."""


@dataclass(frozen=True)
class TimeOutTask(Command["CommandResult"]):
    tenant_id: str
    task_id: str


@dataclass(frozen=True)
class CancelTask(Command["CommandResult"]):
    tenant_id: str
    task_id: str
    reason: str = ""


@dataclass(frozen=True)
class RetryTask(Command["CommandResult"]):
    """An operator's replay of a failed, timed-out or dead-lettered task."""

    tenant_id: str
    task_id: str


# -- messages --------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordMessage(Command["CommandResult"]):
    """An envelope published through the control plane on ``subject``: recorded, sealed,
    in the ``messages`` read model and, unless it was ``delivered`` to its target brokers
    already, queued for the broker in the same transaction (the outbox). A second record
    of one message id is a :class:`~agentmesh.errors.Conflict` (``MESSAGE_EXISTS``)."""

    tenant_id: str
    envelope: Envelope
    subject: str
    message_type: str
    delivered: bool = False


# -- queries ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GetAgent(Query[dict[str, Any]]):
    tenant_id: str
    agent_id: str


@dataclass(frozen=True)
class ListAgents(Query[Page]):
    tenant_id: str
    query: AgentListQuery = field(default_factory=AgentListQuery)


@dataclass(frozen=True)
class GetTask(Query[dict[str, Any]]):
    tenant_id: str
    task_id: str


@dataclass(frozen=True)
class ListTasks(Query[Page]):
    tenant_id: str
    status: str | None = None
    agent_id: str | None = None
    parent_task_id: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class ListTenants(Query[list[dict[str, Any]]]):
    limit: int = 1000
    offset: int = 0


@dataclass(frozen=True)
class GetTenant(Query[dict[str, Any]]):
    tenant_id: str


@dataclass(frozen=True)
class GetMessage(Query[StoredMessage]):
    message_id: str
    tenant_id: str | None = None
