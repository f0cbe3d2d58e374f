"""Agents of a tenant: list, create, get, live view, pause / resume / terminate."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.links import created, same_object
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
    Pagination,
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
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal
from agentmesh.store.queries import AgentListQuery, Page

router = APIRouter(prefix="/v1/tenants/{tenant_id}/agents", tags=["agents"])
TenantPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
AgentPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,256}$")]
OptionalReason = Annotated[AgentActionRequest | None, Body()]


def split_list(values: list[str]) -> tuple[str, ...]:
    """Repeated and comma-separated query values, flattened."""
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


def pagination(page: Page) -> Pagination:
    return Pagination(**page.pagination())


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
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10000)] = 0,
    sort_by: Annotated[str, Query(pattern="^(name|created_at|status)$")] = "created_at",
    sort_order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    principal: Principal = Depends(require("list_agents")),
    ctx: ApiContext = Depends(get_context),
) -> AgentListResponse:
    """Agents of the tenant, filtered, sorted and paginated (spec 3.5 AgentListQuery)."""
    query = AgentListQuery(
        status=AgentStatus(status) if status else None,
        agent_type=agent_type,
        capabilities=split_list(capabilities),
        limit=limit,
        offset=offset,
        sort_by=sort_by,  # type: ignore[arg-type]
        sort_order=sort_order,  # type: ignore[arg-type]
    )
    page: Page = await ctx.bus.query(ListAgents(tenant_id, query))
    return AgentListResponse(
        agents=[AgentInfo(**d) for d in page.items],
        pagination=pagination(page),
        filters_applied=query.filters_applied() or None,
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
    await ctx.caught_up()
    doc: dict[str, Any] = await ctx.bus.query(GetAgent(tenant_id, body.agent_id))
    await ctx.record(
        AuditAction.AGENT_CREATED,
        AuditStatus.SUCCESS,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="agent",
        resource_id=body.agent_id,
    )
    return AgentInfoResponse(**doc)


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


@router.get(
    "/{agent_id}",
    response_model=AgentInfoResponse,
    operation_id="get_agent",
    responses=responses(401, 403, 404, 422),
)
async def get_agent(
    tenant_id: TenantPath,
    agent_id: AgentPath,
    principal: Principal = Depends(require("get_agent")),
    ctx: ApiContext = Depends(get_context),
) -> AgentInfoResponse:
    """One agent; unknown (or another tenant's) is 404 ``AGENT_NOT_FOUND``."""
    doc: dict[str, Any] = await ctx.bus.query(GetAgent(tenant_id, agent_id))
    return AgentInfoResponse(**doc)


async def _control(
    ctx: ApiContext,
    request: Request,
    principal: Principal,
    tenant_id: str,
    agent_id: str,
    command: object,
    action: AuditAction,
    operation: str,
) -> AgentInfoResponse:
    async def load() -> dict[str, Any]:
        doc: dict[str, Any] = await ctx.bus.query(GetAgent(tenant_id, agent_id))
        return doc

    async def tell_the_process() -> None:
        # the running agent process hears it too (best effort: it may be offline)
        live_action = {"pause": "pause", "resume": "resume", "terminate": "stop"}.get(operation)
        if live_action is not None and ctx.mesh is not None:
            with contextlib.suppress(AgentMeshError):
                await ctx.mesh.control(agent_id, live_action, tenant=tenant_id, timeout=2.0)

    doc = await ctx.audited_change(
        command,
        load,
        action=action,
        operation=operation,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="agent",
        resource_id=agent_id,
        after=tell_the_process,
    )
    return AgentInfoResponse(**doc)


@router.post(
    "/{agent_id}/pause",
    response_model=AgentInfoResponse,
    operation_id="pause_agent",
    responses={
        **responses(401, 403, 404, 409, 422),
        **same_object(200, "get_agent", "resume_agent", "terminate_agent", id_field="agent_id"),
    },
)
async def pause_agent(
    tenant_id: TenantPath,
    agent_id: AgentPath,
    request: Request,
    body: OptionalReason = None,
    principal: Principal = Depends(require("pause_agent")),
    ctx: ApiContext = Depends(get_context),
) -> AgentInfoResponse:
    """AVAILABLE/UNHEALTHY -> PAUSED (409 ``INVALID_TRANSITION`` from BUSY or TERMINATED)."""
    reason = body.reason if body else ""
    cmd = PauseAgent(tenant_id, agent_id, reason)
    return await _control(
        ctx, request, principal, tenant_id, agent_id, cmd, AuditAction.AGENT_UPDATED, "pause"
    )


@router.post(
    "/{agent_id}/resume",
    response_model=AgentInfoResponse,
    operation_id="resume_agent",
    responses={
        **responses(401, 403, 404, 409, 422),
        **same_object(200, "get_agent", "pause_agent", "terminate_agent", id_field="agent_id"),
    },
)
async def resume_agent(
    tenant_id: TenantPath,
    agent_id: AgentPath,
    request: Request,
    principal: Principal = Depends(require("resume_agent")),
    ctx: ApiContext = Depends(get_context),
) -> AgentInfoResponse:
    """PAUSED -> AVAILABLE (409 otherwise)."""
    cmd = ResumeAgent(tenant_id, agent_id)
    return await _control(
        ctx, request, principal, tenant_id, agent_id, cmd, AuditAction.AGENT_RESTARTED, "resume"
    )


@router.post(
    "/{agent_id}/terminate",
    response_model=AgentInfoResponse,
    operation_id="terminate_agent",
    responses={
        **responses(401, 403, 404, 409, 422),
        **same_object(200, "get_agent", "resume_agent", id_field="agent_id"),
    },
)
async def terminate_agent(
    tenant_id: TenantPath,
    agent_id: AgentPath,
    request: Request,
    body: OptionalReason = None,
    principal: Principal = Depends(require("terminate_agent")),
    ctx: ApiContext = Depends(get_context),
) -> AgentInfoResponse:
    """-> TERMINATED (409 from BUSY or when already terminated)."""
    reason = body.reason if body else ""
    cmd = TerminateAgent(tenant_id, agent_id, reason)
    return await _control(
        ctx, request, principal, tenant_id, agent_id, cmd, AuditAction.AGENT_TERMINATED, "terminate"
    )
