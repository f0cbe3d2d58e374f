"""Swarm: a leader drives DAG jobs over worker agents; any coordinator takes over
(see :mod:`agentmesh.patterns.swarm.orchestrator`)."""

from __future__ import annotations

from agentmesh.errors import SwarmJobFailed
from agentmesh.patterns.swarm.jobs import (
    BUCKET,
    DEFAULT_PERFORMANCE,
    ROLES,
    TASK_STATUSES,
    TERMINAL,
    WORKER_RELIABILITY,
    cancel_blocked,
    new_job_id,
    parse_job,
    ready_tasks,
)
from agentmesh.patterns.swarm.members import (
    SwarmObserver,
    SwarmWorker,
)
from agentmesh.patterns.swarm.orchestrator import (
    SwarmOrchestrator,
    SwarmStore,
)

__all__ = [
    "BUCKET",
    "DEFAULT_PERFORMANCE",
    "ROLES",
    "TASK_STATUSES",
    "TERMINAL",
    "WORKER_RELIABILITY",
    "SwarmJobFailed",
    "SwarmObserver",
    "SwarmOrchestrator",
    "SwarmStore",
    "SwarmWorker",
    "cancel_blocked",
    "new_job_id",
    "parse_job",
    "ready_tasks",
]
