"""Tasks of a tenant: submit, list with filters, get, cancel, retry a dead-lettered one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.links import created, same_object
from agentmesh.api.schemas import (
    Pagination,
    TaskCancelRequest,
    TaskInfo,
    TaskListResponse,
    TaskResponse,
    TaskStatusName,
    TaskSubmitRequest,
)
from agentmesh.commands import CancelTask, GetTask, ListTasks, RetryTask, SubmitTask
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal
from agentmesh.store.queries import Page

router = APIRouter(prefix="/v1/tenants/{tenant_id}/tasks", tags=["tasks"])
TenantPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
TaskPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,256}$")]


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
    """Submit a task for agents with ``capability`` (offered through the outbox)."""
    result = await ctx.bus.execute(
        SubmitTask(
            tenant_id=tenant_id,
            capability=body.capability,
            payload=body.payload,
            task_type=body.task_type,
            task_id=body.task_id,
            priority=body.priority,
            timeout_seconds=body.timeout_seconds,
            max_retries=body.max_retries,
            source=f"api:{principal.subject}",
        )
    )
    await ctx.caught_up()
    task_id = str(result.aggregate_id)
    doc: dict[str, Any] = await ctx.bus.query(GetTask(tenant_id, task_id))
    await ctx.record(
        AuditAction.TASK_ASSIGNED,
        AuditStatus.SUCCESS,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="task",
        resource_id=task_id,
        details={"operation": "submit", "capability": body.capability},
    )
    return TaskResponse(**doc)


@router.get(
    "",
    response_model=TaskListResponse,
    operation_id="list_tasks",
    responses=responses(401, 403, 422),
)
async def list_tasks(
    tenant_id: TenantPath,
    status: TaskStatusName | None = None,
    agent_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,256}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10000)] = 0,
    principal: Principal = Depends(require("list_tasks")),
    ctx: ApiContext = Depends(get_context),
) -> TaskListResponse:
    """Tasks of the tenant, newest first, filtered by status and agent."""
    page: Page = await ctx.bus.query(
        ListTasks(tenant_id, status=status, agent_id=agent_id, limit=limit, offset=offset)
    )
    filters = {k: v for k, v in (("status", status), ("agent_id", agent_id)) if v is not None}
    return TaskListResponse(
        tasks=[TaskInfo(**d) for d in page.items],
        pagination=Pagination(**page.pagination()),
        filters_applied=filters or None,
    )


@router.get(
    "/{task_id}",
    response_model=TaskResponse,
    operation_id="get_task",
    responses=responses(401, 403, 404, 422),
)
async def get_task(
    tenant_id: TenantPath,
    task_id: TaskPath,
    principal: Principal = Depends(require("get_task")),
    ctx: ApiContext = Depends(get_context),
) -> TaskResponse:
    """One task; unknown (or another tenant's) is 404 ``TASK_NOT_FOUND``."""
    doc: dict[str, Any] = await ctx.bus.query(GetTask(tenant_id, task_id))
    return TaskResponse(**doc)


async def _change(
    ctx: ApiContext,
    request: Request,
    principal: Principal,
    tenant_id: str,
    task_id: str,
    command: object,
    action: AuditAction,
    operation: str,
) -> TaskResponse:
    async def load() -> dict[str, Any]:
        doc: dict[str, Any] = await ctx.bus.query(GetTask(tenant_id, task_id))
        return doc

    doc = await ctx.audited_change(
        command,
        load,
        action=action,
        operation=operation,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="task",
        resource_id=task_id,
    )
    return TaskResponse(**doc)


@router.post(
    "/{task_id}/cancel",
    response_model=TaskResponse,
    operation_id="cancel_task",
    responses={
        **responses(401, 403, 404, 409, 422),
        **same_object(200, "get_task", "retry_task", id_field="task_id"),
    },
)
async def cancel_task(
    tenant_id: TenantPath,
    task_id: TaskPath,
    request: Request,
    body: Annotated[TaskCancelRequest | None, Body()] = None,
    principal: Principal = Depends(require("cancel_task")),
    ctx: ApiContext = Depends(get_context),
) -> TaskResponse:
    """Cancel a task that has not finished (409 when it is already terminal)."""
    cmd = CancelTask(tenant_id, task_id, body.reason if body else "")
    response = await _change(
        ctx, request, principal, tenant_id, task_id, cmd, AuditAction.TASK_CANCELLED, "cancel"
    )
    if ctx.mesh is not None and getattr(ctx.mesh, "tenant", None) == tenant_id:
        try:  # best effort: interrupt it where it runs
            await ctx.mesh.cancel(task_id)
        except Exception as exc:
            from loguru import logger

            logger.warning("cancel of task {} on the mesh failed: {}", task_id, exc)
    return response


@router.post(
    "/{task_id}/retry",
    response_model=TaskResponse,
    operation_id="retry_task",
    responses={
        **responses(401, 403, 404, 409, 422),
        **same_object(200, "get_task", "cancel_task", id_field="task_id"),
    },
)
async def retry_task(
    tenant_id: TenantPath,
    task_id: TaskPath,
    request: Request,
    principal: Principal = Depends(require("retry_task")),
    ctx: ApiContext = Depends(get_context),
) -> TaskResponse:
    """Replay a failed, timed-out or dead-lettered task (409 otherwise)."""
    cmd = RetryTask(tenant_id, task_id)
    return await _change(
        ctx, request, principal, tenant_id, task_id, cmd, AuditAction.TASK_ASSIGNED, "retry"
    )
