"""Approvals of a tenant: list the pending ones, show one with its full context (task,
tool call, arguments, the agent's reasoning so far), approve (optionally with edited
arguments) or reject. Deciding needs the ``approve_task`` permission (roles ``admin``
and ``approver``); a refused decision (decided already, past its deadline, other
arguments or call than the one pending: 409; edits failing the capability's schema: 422)
writes nothing and nothing runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StringConstraints

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.routes.objects import IdPath, TenantPath
from agentmesh.api.schemas import Strict
from agentmesh.commands.approvals import DecideApproval, GetApproval, ListApprovals
from agentmesh.errors import AgentMeshError
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants/{tenant_id}/approvals", tags=["approvals"])
Sha256 = Annotated[str, StringConstraints(pattern="^[0-9a-f]{64}$")]


class ApprovalListResponse(BaseModel):
    items: list[dict[str, Any]]
    total: int


class DecisionRequest(Strict):
    comment: Annotated[str, StringConstraints(max_length=2000)] = ""
    arguments: dict[str, Any] | None = Field(
        default=None, description="Edited arguments (approve only); replace the pending ones"
    )
    args_sha256: Sha256 | None = Field(
        default=None, description="The args_sha256 the approver saw (409 when it changed)"
    )
    call_id: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, description="The tool call the approver means (409 for another call)"
    )


@router.get(
    "",
    response_model=ApprovalListResponse,
    operation_id="list_approvals",
    responses=responses(401, 403, 422),
)
async def list_approvals(
    tenant_id: TenantPath,
    principal: Principal = Depends(require("list_approvals")),
    ctx: ApiContext = Depends(get_context),
) -> ApprovalListResponse:
    """The tenant's pending approvals, newest task first."""
    await ctx.caught_up()
    items = await ctx.bus.query(ListApprovals(tenant_id))
    return ApprovalListResponse(items=items, total=len(items))


@router.get(
    "/{approval_id}",
    operation_id="get_approval",
    responses=responses(401, 403, 404, 422),
)
async def get_approval(
    tenant_id: TenantPath,
    approval_id: IdPath,
    principal: Principal = Depends(require("get_approval")),
    ctx: ApiContext = Depends(get_context),
) -> dict[str, Any]:
    """One approval with its task, arguments, reasoning and conversation so far."""
    result: dict[str, Any] = await ctx.bus.query(GetApproval(tenant_id, approval_id))
    return result


def _schema(ctx: ApiContext, tenant_id: str, capability: str) -> dict[str, Any] | None:
    """The input schema a live agent declares for ``capability``, if any."""
    registry = getattr(ctx.mesh, "registry", None) if ctx.mesh is not None else None
    if registry is None:
        return None
    for record in registry.agents(tenant_id, capability=capability):
        spec = record.capability_specs.get(capability)
        if isinstance(spec, dict) and isinstance(spec.get("input_schema"), dict):
            schema: dict[str, Any] = spec["input_schema"]
            return schema
    return None


async def _decide(
    ctx: ApiContext,
    request: Request,
    principal: Principal,
    tenant_id: str,
    approval_id: str,
    decision: str,
    body: DecisionRequest,
) -> dict[str, Any]:
    current = await ctx.bus.query(GetApproval(tenant_id, approval_id))
    capability = current.get("tool") or current["task"]["capability"]
    command = DecideApproval(
        tenant_id,
        approval_id,
        decision,
        decided_by=principal.subject,
        roles=tuple(principal.roles),
        comment=body.comment,
        edits=body.arguments,
        args_sha256=body.args_sha256,
        call_id=body.call_id,
        schema=_schema(ctx, tenant_id, capability),
    )
    try:
        await ctx.bus.execute(command)
    except AgentMeshError as exc:
        await ctx.record(
            AuditAction.APPROVAL_DECIDED,
            AuditStatus.FAILURE,
            tenant_id=tenant_id,
            request=request,
            principal=principal,
            resource_type="approval",
            resource_id=approval_id,
            details={"decision": decision, "refused": exc.code, "reason": str(exc)[:300]},
        )
        raise
    result: dict[str, Any] = await ctx.bus.query(GetApproval(tenant_id, approval_id))
    return result


@router.post(
    "/{approval_id}/approve",
    operation_id="approve_task",
    responses=responses(401, 403, 404, 409, 422),
)
async def approve(
    tenant_id: TenantPath,
    approval_id: IdPath,
    request: Request,
    body: DecisionRequest | None = None,
    principal: Principal = Depends(require("approve_task")),
    ctx: ApiContext = Depends(get_context),
) -> dict[str, Any]:
    """Approve; with ``arguments`` the task (or tool call) runs with those instead."""
    return await _decide(
        ctx, request, principal, tenant_id, approval_id, "approved", body or DecisionRequest()
    )


@router.post(
    "/{approval_id}/reject",
    operation_id="reject_approval",
    responses=responses(401, 403, 404, 409, 422),
)
async def reject(
    tenant_id: TenantPath,
    approval_id: IdPath,
    request: Request,
    body: DecisionRequest | None = None,
    principal: Principal = Depends(require("reject_approval")),
    ctx: ApiContext = Depends(get_context),
) -> dict[str, Any]:
    """Reject with a ``comment`` (the reason): a task ends ``rejected``; a tool call is
    refused and the model is told."""
    return await _decide(
        ctx, request, principal, tenant_id, approval_id, "rejected", body or DecisionRequest()
    )
