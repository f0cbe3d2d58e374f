"""Tasks of a tenant: submit, list with filters, get, cancel, retry a dead-lettered one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from loguru import logger

from agentmesh import ids
from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.links import created
from agentmesh.api.routes.objects import IdPath, Kind, Ref, TenantPath
from agentmesh.api.routes.paging import LimitQuery, OffsetQuery, page_fields
from agentmesh.api.schemas import (
    TaskCancelRequest,
    TaskInfo,
    TaskListResponse,
    TaskResponse,
    TaskStatusName,
    TaskSubmitRequest,
)
from agentmesh.commands import CancelTask, GetTask, ListTasks, RetryTask, SubmitTask
from agentmesh.domain import parse_priority
from agentmesh.security.audit import AuditAction
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants/{tenant_id}/tasks", tags=["tasks"])


async def _task_ref(tenant_id: TenantPath, task_id: IdPath) -> Ref:
    return Ref(tenant_id, task_id)


TASK = Kind(router, "task", GetTask, TaskResponse, _task_ref)


def submit_command(
    ctx: ApiContext, tenant_id: str, body: TaskSubmitRequest, principal: Principal
) -> SubmitTask:
    """The :class:`SubmitTask` of one request body; a ``strategy`` picks the agent among
    the tenant's live ones (no registry: no live agent, so the task waits in the
    capability queue)."""
    task_id = body.task_id or str(uuid.uuid4())
    to_agent = body.to_agent
    if body.strategy is not None and ctx.mesh is not None:
        to_agent = ctx.mesh.router.choose(
            body.strategy, body.offered_on, parse_priority(body.priority), task_id, tenant=tenant_id
        )
    return SubmitTask(
        tenant_id=tenant_id,
        capability=body.offered_on,
        payload=body.payload,
        task_type=body.task_type,
        task_id=task_id,
        priority=body.priority,
        timeout_seconds=body.timeout_seconds,
        max_attempts=body.max_attempts,
        source=f"api:{principal.subject}",
        to_agent=to_agent,
        require_vetting=body.require_vetting,
        requires_approval=body.requires_approval,
    )


@router.post(
    "",
    status_code=201,
    response_model=TaskResponse,
    operation_id="submit_task",
    responses={
        **responses(401, 403, 409, 422),
        **created("get_task", "cancel_task", "retry_task", id_field="task_id"),
    },
)
async def submit_task(
    tenant_id: TenantPath,
    body: TaskSubmitRequest,
    request: Request,
    principal: Principal = Depends(require("submit_task")),
    ctx: ApiContext = Depends(get_context),
) -> TaskResponse:
    """Submit a task for agents with ``capability`` (offered through the outbox); with
    ``to_agent`` to that agent's inbox, with ``strategy`` to the agent it picks among the
    tenant's live agents (the capability queue when none can take it)."""
    result = await ctx.bus.execute(submit_command(ctx, tenant_id, body, principal))
    return await TASK.created(
        ctx,
        Ref(tenant_id, str(result.aggregate_id)),
        action=AuditAction.TASK_ASSIGNED,
        request=request,
        principal=principal,
        details={"operation": "submit", "capability": body.offered_on},
    )


@router.get(
    "",
    response_model=TaskListResponse,
    operation_id="list_tasks",
    responses=responses(401, 403, 422),
)
async def list_tasks(
    tenant_id: TenantPath,
    status: TaskStatusName | None = None,
    agent_id: Annotated[str | None, Query(pattern=ids.SEGMENT.pattern)] = None,
    parent_task_id: Annotated[str | None, Query(pattern=ids.SEGMENT.pattern)] = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    principal: Principal = Depends(require("list_tasks")),
    ctx: ApiContext = Depends(get_context),
) -> TaskListResponse:
    """Tasks of the tenant, newest first, filtered by status, agent and parent task (the
    subtasks a workflow or pattern submitted while running that task). Page on with
    ``cursor`` = the ``next_cursor`` of the page before: every task is reachable and any
    page is an index seek (``offset``, at most 10,000, still works)."""
    page = await ctx.bus.query(
        ListTasks(
            tenant_id,
            status=status,
            agent_id=agent_id,
            parent_task_id=parent_task_id,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )
    )
    given = (("status", status), ("agent_id", agent_id), ("parent_task_id", parent_task_id))
    filters = {k: v for k, v in given if v is not None}
    return TaskListResponse(
        tasks=[TaskInfo(**d) for d in page.items],
        next_cursor=page.next_cursor,
        **page_fields(page, filters),
    )


TASK.add_get("One task; unknown (or another tenant's) is 404 ``TASK_NOT_FOUND``.")


async def _reason(body: Annotated[TaskCancelRequest | None, Body()] = None) -> str:
    return body.reason if body else ""


async def _cancel_where_it_runs(ctx: ApiContext, ref: Ref) -> None:
    """After a cancel: interrupt the task where it runs (best effort)."""
    if ctx.mesh is not None:
        try:
            await ctx.mesh.cancel(ref.object_id, tenant=ref.tenant_id)
        except Exception as exc:  # noqa: BLE001 - the store already holds the cancel; reaching the mesh is best effort
            logger.warning("cancel of task {} on the mesh failed: {}", ref.object_id, exc)


@TASK.change(
    "cancel",
    AuditAction.TASK_CANCELLED,
    links=("get_task", "retry_task"),
    reason=_reason,
    after=_cancel_where_it_runs,
)
def cancel_task(ref: Ref, reason: str) -> CancelTask:
    """Cancel a task that has not finished (409 when it is already terminal)."""
    return CancelTask(ref.tenant_id, ref.object_id, reason)


@TASK.change("retry", AuditAction.TASK_ASSIGNED, links=("get_task", "cancel_task"))
def retry_task(ref: Ref, reason: str) -> RetryTask:
    """Replay a failed, timed-out or dead-lettered task (409 otherwise)."""
    return RetryTask(ref.tenant_id, ref.object_id)
