"""Tenants: create and list (platform admins), get (the tenant's own callers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from agentmesh import ids
from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.links import created
from agentmesh.api.schemas import (
    Pagination,
    TenantCreateRequest,
    TenantInfo,
    TenantListResponse,
    TenantResponse,
)
from agentmesh.commands import CreateTenant, GetTenant
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])
TenantPath = Annotated[str, Path(pattern=ids.TENANT_ID.pattern)]


@router.post(
    "",
    status_code=201,
    response_model=TenantResponse,
    operation_id="create_tenant",
    responses={
        **responses(401, 403, 409, 422),
        **created(
            "get_tenant",
            "create_agent",
            "list_agents",
            "submit_task",
            "list_tasks",
            "publish_message",
            "list_audit",
            id_field="tenant_id",
            body_field="id",
            tenant_from_path=False,
        ),
    },
)
async def create_tenant(
    body: TenantCreateRequest,
    request: Request,
    principal: Principal = Depends(require("create_tenant")),
    ctx: ApiContext = Depends(get_context),
) -> TenantResponse:
    """Create a tenant with a unique name (id: the given ``tenant_id`` or a new uuid4)."""
    result = await ctx.bus.execute(
        CreateTenant(
            body.name,
            tenant_id=body.tenant_id,
            max_agents=body.max_agents,
            max_messages_per_hour=body.max_messages_per_hour,
        )
    )
    await ctx.caught_up()
    doc = await ctx.bus.query(GetTenant(str(result.aggregate_id)))
    await ctx.record(
        AuditAction.ADMIN_ACTION,
        AuditStatus.SUCCESS,
        tenant_id=doc["id"],
        request=request,
        principal=principal,
        resource_type="tenant",
        resource_id=doc["id"],
        details={"operation": "create_tenant", "name": doc["name"]},
    )
    return TenantResponse(**doc)


@router.get(
    "",
    response_model=TenantListResponse,
    operation_id="list_tenants",
    responses=responses(401, 403, 422),
)
async def list_tenants(
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10000)] = 0,
    principal: Principal = Depends(require("list_tenants")),
    ctx: ApiContext = Depends(get_context),
) -> TenantListResponse:
    """Every tenant, by name (platform admins only)."""
    docs = await ctx.persistence.read_models.list_tenants(limit=limit, offset=offset)
    total = await ctx.persistence.read_models.count_tenants()
    has_more = offset + len(docs) < total
    return TenantListResponse(
        tenants=[TenantInfo(**d) for d in docs],
        pagination=Pagination(
            total=total,
            limit=limit,
            offset=offset,
            has_more=has_more,
            next_offset=offset + len(docs) if has_more else None,
        ),
    )


@router.get(
    "/{tenant_id}",
    response_model=TenantResponse,
    operation_id="get_tenant",
    responses=responses(401, 403, 404, 422),
)
async def get_tenant(
    tenant_id: TenantPath,
    principal: Principal = Depends(require("get_tenant")),
    ctx: ApiContext = Depends(get_context),
) -> TenantResponse:
    """One tenant (a caller of another tenant gets 403)."""
    doc = await ctx.bus.query(GetTenant(tenant_id))
    return TenantResponse(**doc)
