"""Request and response models of the REST API. Request bodies forbid extras."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from agentmesh import ids
from agentmesh.api.options import API_VERSION
from agentmesh.domain.task_values import DEFAULT_MAX_ATTEMPTS
from agentmesh.domain.workflows import check_workflow_data, parse_workflow_type, workflow_capability
from agentmesh.errors import ValidationError

AgentType = Literal["generic", "processor", "analyzer", "coordinator", "worker", "specialized"]
AgentStatusName = Literal["AVAILABLE", "BUSY", "PAUSED", "UNHEALTHY", "TERMINATED", "QUARANTINED"]
TaskStatusName = Literal[
    "submitted",
    "offered",
    "assigned",
    "running",
    "completed",
    "failed",
    "retrying",
    "dead_lettered",
    "cancelled",
    "timed_out",
    "rejected",
    "pending_approval",
]
PriorityName = Literal["low", "medium", "high", "urgent"]

TenantId = Annotated[str, StringConstraints(pattern=ids.TENANT_ID.pattern)]
AgentId = Annotated[str, StringConstraints(pattern=ids.AGENT_ID.pattern)]
ObjectId = Annotated[str, StringConstraints(pattern=ids.SEGMENT.pattern)]
CapabilityName = Annotated[str, StringConstraints(pattern=ids.CAPABILITY.pattern)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50)]
ShortText = Annotated[str, StringConstraints(max_length=500)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Strict(BaseModel):
    """Base of request bodies: unknown fields and wrong JSON types (``false`` for a number,
    ``"3"`` for an integer) are a 422, never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class BaseResponse(BaseModel):
    timestamp: datetime = Field(default_factory=utc_now)
    api_version: str = API_VERSION


# -- health and metrics ----------------------------------------------------------------
class HealthResponse(BaseModel):
    status: Literal["healthy"] = "healthy"
    timestamp: datetime = Field(default_factory=utc_now)
    version: str = API_VERSION
    uptime: float


class ComponentStatus(BaseModel):
    status: Literal["ok", "down", "absent"]
    detail: str | None = None
    latency_ms: float | None = None


class ReadyResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: datetime = Field(default_factory=utc_now)
    components: dict[str, ComponentStatus]


class PerformanceMetrics(BaseModel):
    requests_total: int
    throughput: float


class MetricsResponse(BaseModel):
    agent_count: int
    messages_processed: int
    uptime: float
    performance_metrics: PerformanceMetrics


class Pagination(BaseModel):
    total: int
    limit: int
    offset: int
    has_more: bool
    next_offset: int | None = None


# -- tenants ---------------------------------------------------------------------------
class TenantCreateRequest(Strict):
    tenant_id: TenantId | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    max_agents: int = Field(default=100, ge=1, le=100_000)
    max_messages_per_hour: int = Field(default=10_000, ge=1, le=100_000_000)

    @field_validator("name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("name must not be blank")
        return v


class TenantInfo(BaseModel):
    id: str
    name: str
    is_active: bool
    max_agents: int
    max_messages_per_hour: int
    features: list[str] = []
    created_at: str
    updated_at: str | None = None


class TenantResponse(BaseResponse, TenantInfo):
    pass


class TenantListResponse(BaseResponse):
    tenants: list[TenantInfo]
    pagination: Pagination


# -- agents ----------------------------------------------------------------------------
class CapabilityIn(Strict):
    name: CapabilityName
    level: float = Field(default=3.0, ge=1.0, le=5.0)


class AgentCreateRequest(Strict):
    """A new agent (``tenant_id`` optional; if given it must match the path)."""

    tenant_id: TenantId | None = None
    agent_id: AgentId
    name: Annotated[str, StringConstraints(min_length=3, max_length=256)]
    agent_type: AgentType = "generic"
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    capabilities: list[CapabilityIn] = Field(min_length=1, max_length=100)
    resource_requirements: dict[str, Any] | None = None
    metadata: dict[str, Annotated[str, StringConstraints(max_length=1000)]] = Field(
        default_factory=dict, max_length=100
    )
    tags: list[Tag] = Field(default_factory=list, max_length=100)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("name must not be blank")
        return v

    @field_validator("capabilities")
    @classmethod
    def _unique(cls, caps: list[CapabilityIn]) -> list[CapabilityIn]:
        names = [c.name for c in caps]
        if len(set(names)) != len(names):
            raise ValueError("capability names must be unique")
        return caps

    @field_validator("resource_requirements")
    @classmethod
    def _resources(cls, rr: dict[str, Any] | None) -> dict[str, Any] | None:
        if rr is None:
            return None
        for key in ("cpu", "memory", "storage", "cpu_cores", "memory_gb", "disk_gb"):
            if key in rr:
                v = rr[key]
                if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                    raise ValueError(f"{key} must be a positive number")
                if v > 1_000_000:
                    raise ValueError(f"{key} is unreasonably large")
        for key in ("gpu", "gpu_count"):
            if key in rr:
                v = rr[key]
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1024:
                    raise ValueError(f"{key} must be an integer 0-1024")
        return rr

    def domain_resources(self) -> dict[str, Any] | None:
        """The domain's ResourceRequirement fields (cpu -> cpu_cores, ...)."""
        rr = self.resource_requirements
        if not rr:
            return None
        mapping = {
            "cpu": "cpu_cores",
            "memory": "memory_gb",
            "storage": "disk_gb",
            "gpu": "gpu_count",
        }
        out: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for k, v in rr.items():
            target = mapping.get(k, k)
            if target in ("cpu_cores", "memory_gb", "disk_gb", "gpu_count"):
                out[target] = v
            else:
                custom[k] = v
        if custom:
            out["custom"] = custom
        return out


class CapabilityOut(BaseModel):
    name: str
    level: float


class AgentInfo(BaseModel):
    agent_id: str
    tenant_id: str
    name: str
    agent_type: str
    description: str = ""
    status: AgentStatusName
    capabilities: list[CapabilityOut]
    resource_requirements: dict[str, Any] | None = None
    metadata: dict[str, Any] = {}
    tags: list[str] = []
    created_at: str
    updated_at: str | None = None
    last_heartbeat: str | None = None
    current_task_id: str | None = None
    active_tasks: list[str] = []
    tasks_assigned: int = 0
    tasks_completed: int = 0
    tasks_failed: int = 0
    performance_metrics: dict[str, float] | None = None


class AgentInfoResponse(BaseResponse, AgentInfo):
    pass


class AgentListResponse(BaseResponse):
    agents: list[AgentInfo]
    pagination: Pagination
    filters_applied: dict[str, Any] | None = None


class AgentActionRequest(Strict):
    reason: ShortText = ""


class LiveAgent(BaseModel):
    agent_id: str
    tenant_id: str
    status: str
    capabilities: dict[str, int] = {}
    last_seen: float = 0.0
    load: float = 0.0
    in_flight: int = 0


class LiveAgentsResponse(BaseResponse):
    agents: list[LiveAgent]


# -- tasks -----------------------------------------------------------------------------
RoutingStrategyName = Literal[
    "round_robin", "least_connections", "capability_based", "load_balanced", "priority_queue"
]
AgentIdField = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{3,256}$")]


class TaskSubmitRequest(Strict):
    task_id: ObjectId | None = None
    capability: CapabilityName | None = None
    workflow_type: str | None = None
    """Run this pattern with ``payload`` as its workflow_data instead of offering the task
    on a capability (see :mod:`agentmesh.domain.workflows`); unknown types are a 422."""
    task_type: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: Annotated[int, Field(ge=1, le=5)] | PriorityName = "medium"
    timeout_seconds: int = Field(default=300, ge=1, le=3600)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Runs at most this often (1-6; checked by the domain, 422 otherwise)."""
    strategy: RoutingStrategyName | None = None
    to_agent: AgentIdField | None = None
    require_vetting: bool = False  # the safety agent vets it before any worker may take it
    requires_approval: bool = False  # held as pending_approval until an approver decides

    @model_validator(mode="after")
    def _one_route(self) -> TaskSubmitRequest:
        if self.strategy is not None and self.to_agent is not None:
            raise ValueError("give either strategy or to_agent, not both")
        if self.workflow_type is None:
            if self.capability is None:
                raise ValueError("give a capability or a workflow_type")
            return self
        if self.capability is not None or self.strategy is not None or self.to_agent:
            raise ValueError(
                "a workflow_type is run by the workflow runner: no capability, "
                "strategy or to_agent with it"
            )
        try:
            kind = parse_workflow_type(self.workflow_type)
            self.payload = check_workflow_data(kind, self.payload)
        except ValidationError as exc:  # the domain's message, as a 422
            raise ValueError(str(exc)) from None
        self.workflow_type, self.capability = kind, workflow_capability(kind)
        self.task_type = self.task_type or kind
        return self

    @property
    def offered_on(self) -> str:
        """The capability the task is offered on (set for every valid request)."""
        assert self.capability is not None
        return self.capability


class TaskStepOut(BaseModel):
    status: str
    at: str
    agent_id: str | None = None
    attempt: int = 1
    detail: str | None = None


class TaskInfo(BaseModel):
    task_id: str
    tenant_id: str
    task_type: str
    required_capabilities: list[str]
    payload: dict[str, Any] = {}
    priority: int
    timeout_seconds: int
    max_attempts: int
    status: TaskStatusName
    agent_id: str | None = None
    attempt: int = 1
    retries_used: int = 0
    result: Any = None
    error: Any = None
    submitted_at: str
    updated_at: str | None = None
    completed_at: str | None = None
    assigned_at: str | None = None
    started_at: str | None = None
    queued_seconds: float | None = None
    run_seconds: float | None = None
    timeline: list[TaskStepOut] = []
    parent_task_id: str | None = None
    """The task whose run submitted this one (a workflow's or pattern's subtask)."""


class TaskResponse(BaseResponse, TaskInfo):
    pass


class TaskListResponse(BaseResponse):
    tasks: list[TaskInfo]
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next page; absent on the last page."""
    pagination: Pagination
    filters_applied: dict[str, Any] | None = None


class TaskCancelRequest(Strict):
    reason: ShortText = ""


# -- messages --------------------------------------------------------------------------
class EnvelopeIn(Strict):
    """An envelope: exactly the six keys (metadata, routing, payload, context, security,
    tenant_id). ``tenant_id`` may be left out (the
    path's is used); ``metadata.id`` and ``metadata.type`` default to a new id and
    ``message``."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    routing: dict[str, Any] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    security: dict[str, Any] = Field(default_factory=dict)
    tenant_id: TenantId | None = None


class MessageAccepted(BaseResponse):
    message_id: str
    status: Literal["queued", "delivered"] = "queued"
    subject: str
    targets: list[str] = []
    """With ``routing.targets``: every ``platform:subject`` the envelope was delivered to."""


class MessageResponse(BaseResponse):
    message_id: str
    tenant_id: str
    message_type: str
    subject: str
    source: str
    priority: int | None = None
    correlation_id: str | None = None
    persisted_at: str
    envelope: dict[str, Any]


# -- audit -----------------------------------------------------------------------------
class AuditEntryOut(BaseModel):
    """One entry of the tenant's audit trail: what the API saw (``event_position`` null)
    or what a domain event recorded (``event_position`` = its global position)."""

    entry_id: str
    timestamp: str
    action: str
    status: str
    tenant_id: str
    actor: str
    resource_type: str
    resource_id: str
    request_id: str
    client_ip: str
    classification: str
    details: dict[str, Any]
    hash: str
    event_position: int | None = None


class AuditListResponse(BaseResponse):
    entries: list[AuditEntryOut]
    pagination: Pagination
