"""JSON documents of aggregates as the read models keep them (and the API returns them).

``agent_doc`` has the fields of the API's AgentInfoResponse (plus counters);
``*_from_doc`` rebuild the aggregate so projections can reuse the domain's ``apply``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agentmesh.domain import (
    AgentAggregate,
    AgentCapability,
    AgentStatus,
    HealthMetrics,
    ResourceRequirement,
    TaskAggregate,
    TaskStatus,
    TaskStep,
    TenantAggregate,
)
from agentmesh.domain.events import iso, parse_datetime
from agentmesh.domain.task_values import ACTIVE, DEFAULT_MAX_ATTEMPTS


def _dt(value: Any) -> Any:
    return None if value is None else iso(value)


def _parse(value: Any, name: str) -> Any:
    return None if value is None else parse_datetime(value, name)


def agent_doc(agent: AgentAggregate, updated_at: str) -> dict[str, Any]:
    m = agent.current_metrics
    return {
        "agent_id": agent.agent_id,
        "tenant_id": agent.tenant_id,
        "name": agent.name,
        "agent_type": agent.agent_type,
        "description": agent.description,
        "status": agent.status.value,
        "capabilities": [
            {"name": c.name, "level": c.proficiency_level} for c in agent.capabilities
        ],
        "resource_requirements": agent.resource_requirements.to_dict(),
        "metadata": dict(agent.metadata),
        "tags": list(agent.tags),
        "created_at": iso(agent.created_at),
        "updated_at": updated_at,
        "activated_at": _dt(agent.activated_at),
        "terminated_at": _dt(agent.terminated_at),
        "last_heartbeat": _dt(agent.last_heartbeat),
        "health_check_timeout_seconds": agent.health_check_timeout_seconds,
        "current_task_id": agent.current_task_id,
        "active_tasks": list(agent.active_tasks),
        "tasks_assigned": agent.tasks_assigned,
        "tasks_completed": agent.tasks_completed,
        "tasks_failed": agent.tasks_failed,
        "performance_metrics": None if m is None else {k: float(v) for k, v in m.to_dict().items()},
        "version": agent.version,
    }


def agent_from_doc(doc: dict[str, Any]) -> AgentAggregate:
    metrics = doc.get("performance_metrics")
    if metrics is not None:
        metrics = {k: int(v) if k.startswith("tasks_") else v for k, v in metrics.items()}
    return AgentAggregate(
        agent_id=doc["agent_id"],
        tenant_id=doc["tenant_id"],
        name=doc["name"],
        capabilities=tuple(AgentCapability(c["name"], c["level"]) for c in doc["capabilities"]),
        description=doc.get("description", ""),
        agent_type=doc["agent_type"],
        status=AgentStatus(doc["status"]),
        current_task_id=doc.get("current_task_id"),
        active_tasks=tuple(doc.get("active_tasks") or ()),
        tasks_assigned=doc.get("tasks_assigned", 0),
        tasks_completed=doc.get("tasks_completed", 0),
        tasks_failed=doc.get("tasks_failed", 0),
        last_heartbeat=_parse(doc.get("last_heartbeat"), "last_heartbeat"),
        health_check_timeout_seconds=doc.get("health_check_timeout_seconds", 30.0),
        current_metrics=None if metrics is None else HealthMetrics.from_dict(metrics),
        resource_requirements=ResourceRequirement.from_dict(doc["resource_requirements"]),
        created_at=parse_datetime(doc["created_at"], "created_at"),
        activated_at=_parse(doc.get("activated_at"), "activated_at"),
        terminated_at=_parse(doc.get("terminated_at"), "terminated_at"),
        metadata=dict(doc.get("metadata") or {}),
        tags=tuple(doc.get("tags") or ()),
        version=doc.get("version", 0),
    )


def task_doc(task: TaskAggregate) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "tenant_id": task.tenant_id,
        "task_type": task.task_type,
        "required_capabilities": list(task.required_capabilities),
        "payload": dict(task.payload),
        "priority": task.priority,
        "timeout_seconds": task.timeout_seconds,
        "max_attempts": task.max_attempts,
        "status": task.status.value,
        "agent_id": task.agent_id,
        "attempt": task.attempt,
        "retries_used": task.retries_used,
        "result": task.result,
        "error": task.error,
        "submitted_at": iso(task.submitted_at),
        "updated_at": iso(task.updated_at),
        "completed_at": _dt(task.completed_at),
        "assigned_at": _dt(task.assigned_at),
        "started_at": _dt(task.started_at),
        "queued_seconds": _seconds(task.submitted_at, task.started_at),
        "run_seconds": _seconds(task.started_at, _finished_at(task)),
        "timeline": [
            {
                "status": s.status,
                "at": iso(s.at),
                "agent_id": s.agent_id,
                "attempt": s.attempt,
                **({"detail": s.detail} if s.detail else {}),
            }
            for s in task.timeline
        ],
        "version": task.version,
        "parent_task_id": task.parent_task_id,
    }


def _finished_at(task: TaskAggregate) -> datetime | None:
    """When the task last left RUNNING (completed, failed, timed out, cancelled)."""
    if task.started_at is None or task.status in ACTIVE:
        return None
    return next(
        (s.at for s in reversed(task.timeline) if s.status not in ("retrying", "offered")),
        None,
    )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 6)


def _max_attempts(doc: dict[str, Any]) -> int:
    """``max_attempts`` of a task document; documents written before the rename carry
    ``max_retries`` (attempts = retries + 1)."""
    if "max_attempts" in doc:
        return int(doc["max_attempts"])
    if "max_retries" in doc:
        return int(doc["max_retries"]) + 1
    return DEFAULT_MAX_ATTEMPTS


def current_task_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored task document in today's shape (``max_retries`` of documents written
    before the rename read as ``max_attempts``)."""
    if "max_attempts" in doc:
        return doc
    out = {k: v for k, v in doc.items() if k != "max_retries"}
    out["max_attempts"] = _max_attempts(doc)
    return out


def task_from_doc(doc: dict[str, Any]) -> TaskAggregate:
    return TaskAggregate(
        task_id=doc["task_id"],
        tenant_id=doc["tenant_id"],
        task_type=doc["task_type"],
        required_capabilities=tuple(doc["required_capabilities"]),
        payload=dict(doc.get("payload") or {}),
        priority=doc["priority"],
        timeout_seconds=doc["timeout_seconds"],
        max_attempts=_max_attempts(doc),
        parent_task_id=doc.get("parent_task_id"),
        status=TaskStatus(doc["status"]),
        agent_id=doc.get("agent_id"),
        attempt=doc.get("attempt", 1),
        retries_used=doc.get("retries_used", 0),
        result=doc.get("result"),
        error=doc.get("error"),
        submitted_at=parse_datetime(doc["submitted_at"], "submitted_at"),
        updated_at=parse_datetime(doc["updated_at"], "updated_at"),
        completed_at=_parse(doc.get("completed_at"), "completed_at"),
        assigned_at=_parse(doc.get("assigned_at"), "assigned_at"),
        started_at=_parse(doc.get("started_at"), "started_at"),
        timeline=tuple(
            TaskStep(
                s["status"],
                parse_datetime(s["at"], "timeline.at"),
                s.get("agent_id"),
                s.get("attempt", 1),
                s.get("detail"),
            )
            for s in doc.get("timeline") or ()
        ),
        version=doc.get("version", 0),
    )


def tenant_doc(tenant: TenantAggregate, updated_at: str) -> dict[str, Any]:
    return {
        "id": tenant.tenant_id,
        "name": tenant.name,
        "is_active": tenant.is_active,
        "max_agents": tenant.max_agents,
        "max_messages_per_hour": tenant.max_messages_per_hour,
        "features": list(tenant.features),
        "created_at": iso(tenant.created_at),
        "updated_at": updated_at,
        "version": tenant.version,
    }


def tenant_from_doc(doc: dict[str, Any]) -> TenantAggregate:
    return TenantAggregate(
        tenant_id=doc["id"],
        name=doc["name"],
        max_agents=doc["max_agents"],
        max_messages_per_hour=doc["max_messages_per_hour"],
        features=tuple(doc.get("features") or ()),
        is_active=bool(doc["is_active"]),
        created_at=parse_datetime(doc["created_at"], "created_at"),
        version=doc.get("version", 0),
    )
