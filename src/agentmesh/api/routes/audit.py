"""``GET /v1/tenants/{tenant_id}/audit``: the tenant's audit log (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.schemas import AuditEntryOut, AuditListResponse, Pagination
from agentmesh.security.audit import AuditAction, AuditFilter, AuditStatus
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants/{tenant_id}/audit", tags=["audit"])
TenantPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@router.get(
    "",
    response_model=AuditListResponse,
    operation_id="list_audit",
    responses=responses(401, 403, 422),
)
async def list_audit(
    tenant_id: TenantPath,
    action: AuditAction | None = None,
    status: AuditStatus | None = None,
    actor: Annotated[str | None, Query(max_length=256)] = None,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    resource_id: Annotated[str | None, Query(max_length=256)] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO-8601, inclusive")] = None,
    until: Annotated[str | None, Query(max_length=40, description="ISO-8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100000)] = 0,
    principal: Principal = Depends(require("list_audit")),
    ctx: ApiContext = Depends(get_context),
) -> AuditListResponse:
    """Audit entries of the tenant, newest first, with filters."""
    flt = AuditFilter(
        tenant_id=tenant_id,
        action=action.value if action else None,
        status=status.value if status else None,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        request_id=request_id,
        since=since,
        until=until,
    )
    entries, total = await ctx.audit.query(flt, limit=limit, offset=offset)
    has_more = offset + len(entries) < total
    return AuditListResponse(
        entries=[
            AuditEntryOut(**{k: v for k, v in e.to_dict().items() if k != "prev_hash"})
            for e in entries
        ],
        pagination=Pagination(
            total=total,
            limit=limit,
            offset=offset,
            has_more=has_more,
            next_offset=offset + len(entries) if has_more else None,
        ),
    )
