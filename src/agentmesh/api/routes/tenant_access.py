"""Tenant access to the bus: deactivate / reactivate a tenant (platform admins) and revoke
a token by its ``jti`` (the tenant's admins). Deactivation and revocation disconnect the
affected agents from the broker at once when this control plane serves the broker's auth
callout (``agentmesh up``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field

from agentmesh import ids
from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.schemas import BaseResponse, Strict, TenantResponse
from agentmesh.commands import DeactivateTenant, GetTenant, ReactivateTenant
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])
TenantPath = Annotated[str, Path(pattern=ids.TENANT_ID.pattern)]
TokenIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,128}$")]


class DeactivateRequest(Strict):
    reason: str = Field(default="", max_length=1000)


class TenantAccessResponse(TenantResponse):
    disconnected: int = Field(description="Bus connections closed by this change.")


class TokenRevokedResponse(BaseResponse):
    tenant_id: str
    token_id: str
    disconnected: int


async def _record(
    ctx: ApiContext, request: Request, principal: Principal, tenant_id: str, **details: Any
) -> None:
    await ctx.record(
        AuditAction.ADMIN_ACTION,
        AuditStatus.SUCCESS,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="tenant",
        resource_id=tenant_id,
        details=details,
    )


@router.post(
    "/{tenant_id}/deactivate",
    response_model=TenantAccessResponse,
    operation_id="deactivate_tenant",
    responses=responses(401, 403, 404, 409, 422),
)
async def deactivate_tenant(
    tenant_id: TenantPath,
    request: Request,
    body: DeactivateRequest | None = None,
    principal: Principal = Depends(require("deactivate_tenant")),
    ctx: ApiContext = Depends(get_context),
) -> TenantAccessResponse:
    """Deactivate a tenant: its tokens are refused on the bus, its agents disconnected."""
    reason = body.reason if body is not None else ""
    await ctx.bus.execute(DeactivateTenant(tenant_id, reason))
    closed = await ctx.bus_guard.deactivate_tenant(tenant_id) if ctx.bus_guard else 0
    await ctx.caught_up()
    doc: dict[str, Any] = await ctx.bus.query(GetTenant(tenant_id))
    await _record(
        ctx, request, principal, tenant_id, operation="deactivate_tenant", disconnected=closed
    )
    return TenantAccessResponse(**doc, disconnected=closed)


@router.post(
    "/{tenant_id}/reactivate",
    response_model=TenantAccessResponse,
    operation_id="reactivate_tenant",
    responses=responses(401, 403, 404, 409, 422),
)
async def reactivate_tenant(
    tenant_id: TenantPath,
    request: Request,
    principal: Principal = Depends(require("reactivate_tenant")),
    ctx: ApiContext = Depends(get_context),
) -> TenantAccessResponse:
    """Reactivate a tenant: its tokens are accepted on the bus again."""
    await ctx.bus.execute(ReactivateTenant(tenant_id))
    if ctx.bus_guard is not None:
        ctx.bus_guard.reactivate_tenant(tenant_id)
    await ctx.caught_up()
    doc: dict[str, Any] = await ctx.bus.query(GetTenant(tenant_id))
    await _record(ctx, request, principal, tenant_id, operation="reactivate_tenant")
    return TenantAccessResponse(**doc, disconnected=0)


@router.post(
    "/{tenant_id}/tokens/{token_id}/revoke",
    response_model=TokenRevokedResponse,
    operation_id="revoke_token",
    responses=responses(401, 403, 404, 409, 422),
)
async def revoke_token(
    tenant_id: TenantPath,
    token_id: TokenIdPath,
    request: Request,
    principal: Principal = Depends(require("revoke_token")),
    ctx: ApiContext = Depends(get_context),
) -> TokenRevokedResponse:
    """Revoke a token by its ``jti``: REST and the WebSocket refuse it from now on (the
    deny list of every control plane on this store, reloaded every 5 s), and where this
    control plane serves the bus auth callout its bus clients are closed at once."""
    from agentmesh.security.revocation import record_revocation

    await record_revocation(ctx.audit, jti=token_id, actor=principal.subject)
    ctx.tokens.deny.revoke_token(token_id)
    closed = 0
    if ctx.bus_guard is not None:
        closed = await ctx.bus_guard.revoke_token(tenant_id, token_id)
    await _record(
        ctx,
        request,
        principal,
        tenant_id,
        operation="revoke_token",
        token_id=token_id,
        disconnected=closed,
    )
    return TokenRevokedResponse(tenant_id=tenant_id, token_id=token_id, disconnected=closed)
