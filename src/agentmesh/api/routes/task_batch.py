"""``POST /v1/tenants/{tenant_id}/tasks:batch``: up to 1,000 tasks in one call, validated
as ``POST /tasks`` validates one, written in one transaction, all or nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.routes.objects import TenantPath
from agentmesh.api.routes.tasks import submit_command
from agentmesh.api.schemas import BaseResponse, Strict, TaskSubmitRequest
from agentmesh.commands import SubmitTasks
from agentmesh.commands.batch import MAX_BATCH
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["tasks"])


class TaskBatchRequest(Strict):
    tasks: Annotated[list[TaskSubmitRequest], Field(min_length=1, max_length=MAX_BATCH)]


class TaskBatchResponse(BaseResponse):
    task_ids: list[str]
    """The submitted tasks' ids, in the order of the request."""
    count: int
    status: str = "offered"


@router.post(
    "/tasks:batch",
    status_code=201,
    response_model=TaskBatchResponse,
    operation_id="submit_tasks_batch",
    responses=responses(401, 403, 409, 422),
)
async def submit_tasks_batch(
    tenant_id: TenantPath,
    body: TaskBatchRequest,
    request: Request,
    principal: Principal = Depends(require("submit_tasks_batch")),
    ctx: ApiContext = Depends(get_context),
) -> TaskBatchResponse:
    """Submit 1-1,000 tasks at once. Each is what ``POST /tasks`` takes; one invalid
    task, a ``task_id`` given twice or one that exists refuses the whole batch (422 or
    409, nothing written). Every task counts against the tenant's hourly quota, and the
    read models include them when the answer comes (read-your-writes)."""
    commands = [submit_command(ctx, tenant_id, t, principal) for t in body.tasks]
    result = await ctx.bus.execute(SubmitTasks(tenant_id, commands))
    await ctx.caught_up()
    await ctx.record_many(
        AuditAction.TASK_ASSIGNED,
        AuditStatus.SUCCESS,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="task",
        resource_ids=result.task_ids,
        details={"operation": "submit_batch", "batch_size": len(result.task_ids)},
    )
    return TaskBatchResponse(task_ids=list(result.task_ids), count=len(result.task_ids))
