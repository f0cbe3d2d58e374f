"""Decentralized groups of a tenant: Raft leader, term, commit index, gossip membership."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.routes.objects import TenantPath
from agentmesh.decentralized.views import collect_groups
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants/{tenant_id}/clusters", tags=["clusters"])


class ClusterMember(BaseModel):
    address: str
    agent_id: str | None = None
    gossip: str = Field(description="alive, suspect, dead, left or unknown")
    incarnation: int | None = None
    since: float | None = Field(None, description="When the gossip state last changed (epoch s)")
    suspected: float | None = Field(None, description="When it was last suspected (epoch s)")
    raft_member: bool
    leader: bool


class ClusterNode(BaseModel):
    node: str | None
    agent_id: str | None = None
    state: str | None = Field(None, description="leader or follower, as the node says")
    term: int | None = None
    commit_index: int | None = None
    applied: int | None = None


class ClusterGroup(BaseModel):
    group: str
    leader: str | None
    term: int | None
    commit_index: int | None
    members: list[ClusterMember]
    nodes: list[ClusterNode]


class ClustersResponse(BaseModel):
    groups: list[ClusterGroup]


@router.get(
    "",
    response_model=ClustersResponse,
    operation_id="list_clusters",
    responses=responses(401, 403, 422),
)
async def list_clusters(
    tenant_id: TenantPath,
    wait: float = Query(0.5, ge=0.05, le=5.0, description="Seconds to collect answers"),
    principal: Principal = Depends(require("list_clusters")),
    ctx: ApiContext = Depends(get_context),
) -> ClustersResponse:
    """Every decentralized group of the tenant as its nodes report it over the bus (empty
    when no broker is attached or no decentralized agent runs)."""
    transport: Any = getattr(ctx.mesh, "transport", None) if ctx.mesh is not None else None
    groups = await collect_groups(transport, tenant_id, wait=wait) if transport else []
    return ClustersResponse(groups=[ClusterGroup(**g) for g in groups])
