"""Stream ids of the aggregates in the event store."""

from __future__ import annotations

TENANT_STREAM = "tenant"


def agent_stream(agent_id: str) -> str:
    return f"agent-{agent_id}"


def task_stream(task_id: str) -> str:
    return f"task-{task_id}"


def message_stream(message_id: str) -> str:
    return f"message-{message_id}"
