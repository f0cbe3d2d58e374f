"""``/asyncapi.json`` (the mesh's subjects and envelope) and the tenant's own document with
the payload schemas its live agents declared."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.routes.objects import TenantPath
from agentmesh.interop.asyncapi import asyncapi_document
from agentmesh.security.tenancy import Principal

router = APIRouter(tags=["asyncapi"])


def _url(ctx: ApiContext) -> str | None:
    return ctx.mesh.transport.url if ctx.mesh is not None else None


def live_specs(ctx: ApiContext, tenant_id: str) -> dict[str, dict[str, Any]]:
    """The capability specs the tenant's live agents declared (first declaration wins)."""
    specs: dict[str, dict[str, Any]] = {}
    if ctx.mesh is None:
        return specs
    for record in ctx.mesh.registry.agents(tenant_id):
        for cap, spec in record.capability_specs.items():
            specs.setdefault(cap, spec)
    return specs


@router.get("/asyncapi.json", operation_id="asyncapi", response_model=dict[str, Any])
async def asyncapi(ctx: ApiContext = Depends(get_context)) -> JSONResponse:
    """The AsyncAPI 3.0 document of the mesh: every subject family and the envelope."""
    return JSONResponse(asyncapi_document(transport_url=_url(ctx)))


@router.get(
    "/v1/tenants/{tenant_id}/asyncapi.json",
    operation_id="get_tenant_asyncapi",
    response_model=dict[str, Any],
    responses=responses(401, 403, 422),
)
async def tenant_asyncapi(
    tenant_id: TenantPath,
    principal: Principal = Depends(require("get_tenant_asyncapi")),
    ctx: ApiContext = Depends(get_context),
) -> JSONResponse:
    """The AsyncAPI 3.0 document of one tenant, with a channel pair (durable tasks,
    request/reply) and the payload schema of every capability its live agents declared."""
    doc = asyncapi_document(
        tenant=tenant_id, capability_specs=live_specs(ctx, tenant_id), transport_url=_url(ctx)
    )
    return JSONResponse(doc)
