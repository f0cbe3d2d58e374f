"""``GET /v1/tenants/{tenant_id}/federated/rounds``: the rounds of the tenant's federated
learning jobs (participants, accuracy, loss, epsilon), from the event store."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.schemas import BaseResponse
from agentmesh.federated.history import round_rows
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants/{tenant_id}/federated", tags=["federated"])
TenantPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class FederatedRound(BaseModel):
    """One round of a job: committed (a new model version) or failed."""

    job: str
    round: int
    status: Literal["committed", "failed"]
    model_version: int
    participants: list[str]
    dropped: list[str] = []
    rejected: int = 0
    samples: int | None = None
    accuracy: float | None = None
    loss: float | None = None
    epsilon: float | None = None
    aggregation: str | None = None
    secure: bool | None = None
    seconds: float | None = None
    reason: str | None = None
    at: str


class FederatedRoundsResponse(BaseResponse):
    tenant_id: str
    rounds: list[FederatedRound]


@router.get(
    "/rounds",
    response_model=FederatedRoundsResponse,
    operation_id="list_federated_rounds",
    responses=responses(401, 403, 422, 503),
)
async def list_federated_rounds(
    tenant_id: TenantPath,
    job: Annotated[str | None, Query(max_length=256, description="Only this job.")] = None,
    principal: Principal = Depends(require("list_federated_rounds")),
    ctx: ApiContext = Depends(get_context),
) -> FederatedRoundsResponse:
    """Every round of the tenant's federated jobs, oldest first (round 0 is the initial
    model); ``epsilon`` is the differential-privacy budget spent in the round."""
    rows = await round_rows(ctx.persistence.store, tenant_id, job)
    return FederatedRoundsResponse(
        tenant_id=tenant_id, rounds=[FederatedRound.model_validate(r) for r in rows]
    )
