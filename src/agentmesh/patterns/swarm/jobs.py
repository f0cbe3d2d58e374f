"""Swarm jobs as data: a DAG of tasks, parsed and validated, its ready and blocked
tasks (pure), and the constants of the swarm (roles, statuses, defaults)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentmesh.errors import (
    ValidationError,
)
from agentmesh.patterns import names

if TYPE_CHECKING:
    pass

BUCKET = "AM_SWARM"
ROLES = ("leader", "worker", "observer", "coordinator", "specialist")
TASK_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
TERMINAL = ("completed", "failed", "cancelled")
DEFAULT_PERFORMANCE = 0.8
WORKER_RELIABILITY = 0.9


def parse_job(payload: Mapping[str, Any], default_capability: str | None) -> dict[str, Any]:
    """A job from a task payload: ``{"tasks": [{"id", "capability", "payload",
    "depends_on"}]}`` (a DAG) or any other payload = one task (``capability`` optional)."""
    raw = payload.get("tasks")
    if raw is None:
        raw = [
            {
                "id": "task",
                "capability": payload.get("capability") or default_capability,
                "payload": dict(payload.get("payload") or payload),
            }
        ]
    if not isinstance(raw, list) or not raw:
        raise ValidationError("a swarm job needs a non-empty 'tasks' list")
    tasks: dict[str, dict[str, Any]] = {}
    for item in raw:
        tid = str(item.get("id") or f"t{len(tasks)}")
        names.kv_key("x", tid)  # one token
        if tid in tasks:
            raise ValidationError(f"duplicate swarm task id {tid!r}")
        tasks[tid] = {
            "capability": item.get("capability"),
            "payload": dict(item.get("payload") or {}),
            "depends_on": [str(d) for d in item.get("depends_on") or []],
            "status": "pending",
        }
    for tid, t in tasks.items():
        missing = [d for d in t["depends_on"] if d not in tasks]
        if missing:
            raise ValidationError(f"task {tid!r} depends on unknown task(s) {missing}")
    _check_acyclic(tasks)
    return {"tasks": tasks, "status": "pending"}


def _check_acyclic(tasks: Mapping[str, Mapping[str, Any]]) -> None:
    state: dict[str, int] = {}

    def visit(t: str) -> None:
        if state.get(t) == 1:
            raise ValidationError(f"swarm job has a dependency cycle through {t!r}")
        if state.get(t) == 2:
            return
        state[t] = 1
        for d in tasks[t]["depends_on"]:
            visit(d)
        state[t] = 2

    for t in tasks:
        visit(t)


def ready_tasks(job: Mapping[str, Any]) -> list[str]:
    """Pending tasks whose dependencies all completed."""
    tasks = job["tasks"]
    return [
        tid
        for tid, t in tasks.items()
        if t["status"] == "pending"
        and all(tasks[d]["status"] == "completed" for d in t["depends_on"])
    ]


def cancel_blocked(job: dict[str, Any]) -> bool:
    """Cancel pending tasks that depend on a failed or cancelled one; True if any changed."""
    tasks, changed = job["tasks"], False
    again = True
    while again:
        again = False
        for t in tasks.values():
            if t["status"] == "pending" and any(
                tasks[d]["status"] in ("failed", "cancelled") for d in t["depends_on"]
            ):
                t["status"] = "cancelled"
                changed = again = True
    return changed


def new_job_id() -> str:
    return "job-" + uuid.uuid4().hex[:12]
