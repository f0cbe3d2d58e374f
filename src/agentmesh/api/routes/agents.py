"""Agents of a tenant: list, create, get, live view, pause / resume / terminate."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.links import created
from agentmesh.api.routes.objects import Hook, IdPath, Kind, Ref, TenantPath
from agentmesh.api.routes.paging import LimitQuery, OffsetQuery, page_fields
from agentmesh.api.schemas import (
    AgentActionRequest,
    AgentCreateRequest,
    AgentInfo,
    AgentInfoResponse,
    AgentListResponse,
    AgentStatusName,
    AgentType,
    LiveAgent,
    LiveAgentsResponse,
)
from agentmesh.commands import (
    GetAgent,
    ListAgents,
    PauseAgent,
    RegisterAgent,
    ResumeAgent,
    TerminateAgent,
)
from agentmesh.domain import AgentStatus
from agentmesh.errors import AgentMeshError, ValidationError
from agentmesh.security.audit import AuditAction
from agentmesh.security.tenancy import Principal
from agentmesh.store.queries import AgentListQuery

router = APIRouter(prefix="/v1/tenants/{tenant_id}/agents", tags=["agents"])


async def _agent_ref(tenant_id: TenantPath, agent_id: IdPath) -> Ref:
    return Ref(tenant_id, agent_id)


AGENT = Kind(router, "agent", GetAgent, AgentInfoResponse, _agent_ref)


def split_list(values: list[str]) -> tuple[str, ...]:
    """Repeated and comma-separated query values, flattened."""
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


@router.get(
    "",
    response_model=AgentListResponse,
    operation_id="list_agents",
    responses=responses(401, 403, 422),
)
async def list_agents(
    tenant_id: TenantPath,
    status: AgentStatusName | None = None,
    agent_type: AgentType | None = None,
    capabilities: Annotated[list[str], Query(max_length=50)] = [],  # noqa: B006
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    sort_by: Annotated[str, Query(pattern="^(name|created_at|status)$")] = "created_at",
    sort_order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    principal: Principal = Depends(require("list_agents")),
    ctx: ApiContext = Depends(get_context),
) -> AgentListResponse:
    """Agents of the tenant, filtered, sorted and paginated (limit 1-1000, default 50;
    offset 0-10000; sort by name, created_at or status, default created_at desc)."""
    query = AgentListQuery(
        status=AgentStatus(status) if status else None,
        agent_type=agent_type,
        capabilities=split_list(capabilities),
        limit=limit,
        offset=offset,
        sort_by=sort_by,  # type: ignore[arg-type]
        sort_order=sort_order,  # type: ignore[arg-type]
    )
    page = await ctx.bus.query(ListAgents(tenant_id, query))
    return AgentListResponse(
        agents=[AgentInfo(**d) for d in page.items],
        **page_fields(page, query.filters_applied()),
    )


@router.post(
    "",
    status_code=201,
    response_model=AgentInfoResponse,
    operation_id="create_agent",
    responses={
        **responses(401, 403, 409, 422),
        **created(
            "get_agent", "pause_agent", "resume_agent", "terminate_agent", id_field="agent_id"
        ),
    },
)
async def create_agent(
    tenant_id: TenantPath,
    body: AgentCreateRequest,
    request: Request,
    principal: Principal = Depends(require("create_agent")),
    ctx: ApiContext = Depends(get_context),
) -> AgentInfoResponse:
    """Register an agent (201); an existing id is 409 ``AGENT_EXISTS``."""
    if body.tenant_id is not None and body.tenant_id != tenant_id:
        raise ValidationError(
            f"body tenant_id {body.tenant_id!r} does not match the path", code="TENANT_MISMATCH"
        )
    await ctx.bus.execute(
        RegisterAgent(
            tenant_id=tenant_id,
            agent_id=body.agent_id,
            name=body.name,
            capabilities={c.name: c.level for c in body.capabilities},
            agent_type=body.agent_type,
            description=body.description,
            metadata=dict(body.metadata),
            tags=tuple(body.tags),
            resource_requirements=body.domain_resources(),
        )
    )
    return await AGENT.created(
        ctx,
        Ref(tenant_id, body.agent_id),
        action=AuditAction.AGENT_CREATED,
        request=request,
        principal=principal,
    )


@router.get(
    "/live",
    response_model=LiveAgentsResponse,
    operation_id="list_live_agents",
    responses=responses(401, 403, 422),
)
async def live_agents(
    tenant_id: TenantPath,
    principal: Principal = Depends(require("list_live_agents")),
    ctx: ApiContext = Depends(get_context),
) -> LiveAgentsResponse:
    """Agents heard from by heartbeat (empty when no broker is attached)."""
    registry = getattr(ctx.mesh, "registry", None) if ctx.mesh is not None else None
    rows: list[dict[str, Any]] = registry.snapshot(tenant_id) if registry is not None else []
    return LiveAgentsResponse(
        agents=[
            LiveAgent(**{k: v for k, v in r.items() if k in LiveAgent.model_fields})
            for r in rows
            if r.get("tenant_id") == tenant_id
        ]
    )


AGENT.add_get("One agent; unknown (or another tenant's) is 404 ``AGENT_NOT_FOUND``.")


def _tell_the_process(live_action: str) -> Hook:
    """After a change: the running agent process hears it too (best effort: it may be
    offline)."""

    async def tell(ctx: ApiContext, ref: Ref) -> None:
        if ctx.mesh is not None:
            with contextlib.suppress(AgentMeshError):
                await ctx.mesh.control(
                    ref.object_id, live_action, tenant=ref.tenant_id, timeout=2.0
                )

    return tell


async def _reason(body: Annotated[AgentActionRequest | None, Body()] = None) -> str:
    return body.reason if body else ""


@AGENT.change(
    "pause",
    AuditAction.AGENT_UPDATED,
    links=("get_agent", "resume_agent", "terminate_agent"),
    reason=_reason,
    after=_tell_the_process("pause"),
)
def pause_agent(ref: Ref, reason: str) -> PauseAgent:
    """AVAILABLE/UNHEALTHY -> PAUSED (409 ``INVALID_TRANSITION`` from BUSY or TERMINATED)."""
    return PauseAgent(ref.tenant_id, ref.object_id, reason)


@AGENT.change(
    "resume",
    AuditAction.AGENT_RESTARTED,
    links=("get_agent", "pause_agent", "terminate_agent"),
    after=_tell_the_process("resume"),
)
def resume_agent(ref: Ref, reason: str) -> ResumeAgent:
    """PAUSED -> AVAILABLE (409 otherwise)."""
    return ResumeAgent(ref.tenant_id, ref.object_id)


@AGENT.change(
    "terminate",
    AuditAction.AGENT_TERMINATED,
    links=("get_agent", "resume_agent"),
    reason=_reason,
    after=_tell_the_process("stop"),
)
def terminate_agent(ref: Ref, reason: str) -> TerminateAgent:
    """-> TERMINATED (409 from BUSY or when already terminated)."""
    return TerminateAgent(ref.tenant_id, ref.object_id, reason)
