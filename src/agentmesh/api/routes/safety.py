"""Safety (spec 3.12): the tenant's policy (GET, admin-only PUT), human feedback on an
agent's alignment, and an admin's release of a quarantined agent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StringConstraints

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.routes.agents import AGENT
from agentmesh.api.routes.objects import IdPath, Ref, TenantPath
from agentmesh.api.schemas import AgentInfoResponse, Strict
from agentmesh.commands.safety import GetSafetyPolicy, ReleaseAgent, SetSafetyPolicy
from agentmesh.safety import broadcast
from agentmesh.safety.alignment import TARGETS
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["safety"])
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]


class SafetyPolicyResponse(BaseModel):
    tenant_id: str
    version: int
    policy: dict[str, Any]
    set_by: str = ""
    set_at: str | None = None
    broadcast: bool = False


class FeedbackRequest(Strict):
    rating: float = Field(ge=0, le=1, description="0 = badly misaligned, 1 = fully aligned")
    targets: list[Annotated[str, StringConstraints(pattern="^(" + "|".join(TARGETS) + ")$")]] = (
        Field(default_factory=list, max_length=5)
    )
    comment: Annotated[str, StringConstraints(max_length=1000)] = ""


class FeedbackResponse(BaseModel):
    agent_id: str
    accepted: bool
    broadcast: bool


class ReleaseRequest(Strict):
    reason: Reason


def _transport(ctx: ApiContext) -> Any | None:
    return getattr(ctx.mesh, "transport", None) if ctx.mesh is not None else None


@router.get(
    "/safety/policy",
    response_model=SafetyPolicyResponse,
    operation_id="get_safety_policy",
    responses=responses(401, 403, 422),
)
async def get_safety_policy(
    tenant_id: TenantPath,
    principal: Principal = Depends(require("get_safety_policy")),
    ctx: ApiContext = Depends(get_context),
) -> SafetyPolicyResponse:
    """The policy in force for the tenant (the built-in default until an admin puts one)."""
    doc = await ctx.bus.query(GetSafetyPolicy(tenant_id))
    return SafetyPolicyResponse(tenant_id=tenant_id, **doc)


@router.put(
    "/safety/policy",
    response_model=SafetyPolicyResponse,
    operation_id="put_safety_policy",
    responses=responses(401, 403, 409, 422),
)
async def put_safety_policy(
    tenant_id: TenantPath,
    body: dict[str, Any],
    request: Request,
    principal: Principal = Depends(require("put_safety_policy")),
    ctx: ApiContext = Depends(get_context),
) -> SafetyPolicyResponse:
    """Put a new policy in force (admins only): validated and compiled whole (422 names
    the field), its ``version`` newer than the one in force (else 409), stored, audited,
    and broadcast to every process of the tenant."""
    details = {"operation": "put_safety_policy", "version": body.get("version")}
    try:
        await ctx.bus.execute(SetSafetyPolicy(tenant_id, body, principal.subject))
    except Exception as exc:
        await ctx.record(
            AuditAction.POLICY_UPDATED,
            AuditStatus.FAILURE,
            tenant_id=tenant_id,
            request=request,
            principal=principal,
            resource_type="safety_policy",
            resource_id=tenant_id,
            details={**details, "error": str(exc)[:200]},
        )
        raise
    doc = await ctx.bus.query(GetSafetyPolicy(tenant_id))
    transport = _transport(ctx)
    if transport is not None:
        await broadcast.publish_policy(transport, tenant_id, doc["policy"])
    await ctx.record(
        AuditAction.POLICY_UPDATED,
        AuditStatus.SUCCESS,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="safety_policy",
        resource_id=tenant_id,
        details=details,
    )
    return SafetyPolicyResponse(tenant_id=tenant_id, broadcast=transport is not None, **doc)


@router.post(
    "/agents/{agent_id}/feedback",
    status_code=202,
    response_model=FeedbackResponse,
    operation_id="agent_feedback",
    responses=responses(401, 403, 404, 422),
)
async def agent_feedback(
    tenant_id: TenantPath,
    agent_id: IdPath,
    body: FeedbackRequest,
    request: Request,
    principal: Principal = Depends(require("agent_feedback")),
    ctx: ApiContext = Depends(get_context),
) -> FeedbackResponse:
    """A human's rating of the agent's alignment (all five targets, or those named); the
    agent's runtime folds it into its score and quarantines it when misaligned."""
    await AGENT.load(ctx, Ref(tenant_id, agent_id))  # 404 for an unknown agent
    transport = _transport(ctx)
    if transport is not None:
        await broadcast.feedback(
            transport,
            tenant_id,
            agent_id,
            body.rating,
            body.targets,
            principal.subject,
            body.comment,
        )
    await ctx.record(
        AuditAction.AGENT_UPDATED,
        AuditStatus.SUCCESS,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="agent",
        resource_id=agent_id,
        details={"operation": "feedback", "rating": body.rating, "targets": body.targets},
    )
    return FeedbackResponse(agent_id=agent_id, accepted=True, broadcast=transport is not None)


@router.post(
    "/agents/{agent_id}/release",
    response_model=AgentInfoResponse,
    operation_id="release_agent",
    responses=responses(401, 403, 404, 409, 422),
)
async def release_agent(
    tenant_id: TenantPath,
    agent_id: IdPath,
    body: ReleaseRequest,
    request: Request,
    principal: Principal = Depends(require("release_agent")),
    ctx: ApiContext = Depends(get_context),
) -> AgentInfoResponse:
    """Release a QUARANTINED agent (admins only; 409 when it is not quarantined): the store
    records who and why, and every process lets the agent take work again."""
    ref = Ref(tenant_id, agent_id)
    transport = _transport(ctx)

    async def tell_runtimes() -> None:
        if transport is not None:
            await broadcast.release(transport, tenant_id, agent_id, principal.subject, body.reason)

    doc = await ctx.audited_change(
        ReleaseAgent(tenant_id, agent_id, principal.subject, body.reason),
        lambda: AGENT.load(ctx, ref),
        action=AuditAction.ADMIN_ACTION,
        operation="release",
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="agent",
        resource_id=agent_id,
        after=tell_runtimes,
    )
    return AgentInfoResponse(**doc)
