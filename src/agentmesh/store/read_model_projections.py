"""The four read models the control plane serves (agents, tasks, tenants, messages), each
a :class:`~agentmesh.store.projections.Projection` that folds domain events into one
table of JSON documents; :func:`default_projections` lists them."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson

from agentmesh.domain import (
    AgentAggregate,
    AgentCreatedEvent,
    AgentEvent,
    AgentHealthCheckPassedEvent,
    AgentHeartbeatReceivedEvent,
    DomainEvent,
    MessageRecordedEvent,
    TaskAggregate,
    TaskEvent,
    TaskSubmittedEvent,
    TenantAggregate,
    TenantCreatedEvent,
    TenantEvent,
)
from agentmesh.store.base import StoredEvent
from agentmesh.store.documents import (
    agent_doc,
    agent_from_doc,
    task_doc,
    task_from_doc,
    tenant_doc,
    tenant_from_doc,
)
from agentmesh.store.sealing import DOC_FIELDS, Sealer

if TYPE_CHECKING:
    from agentmesh.store.projections import Projection

Key = tuple[Any, ...]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    """A read-model table: key columns, all columns (insert order), insert-only or not."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    insert_only: bool = False

    def upsert_sql(self) -> str:
        cols = ", ".join(self.columns)
        marks = ", ".join("?" for _ in self.columns)
        conflict = ", ".join(self.key)
        if self.insert_only:
            action = "DO NOTHING"
        else:
            sets = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c not in self.key)
            action = f"DO UPDATE SET {sets}"
        return (
            f"INSERT INTO {self.name} ({cols}) VALUES ({marks}) ON CONFLICT ({conflict}) {action}"
        )


class AgentsProjection:
    name = "agents"
    table = Table(
        "agents",
        ("tenant_id", "agent_id"),
        (
            "tenant_id",
            "agent_id",
            "name",
            "agent_type",
            "status",
            "capabilities",
            "created_at",
            "updated_at",
            "doc",
        ),
    )

    def key(self, stored: StoredEvent, event: DomainEvent) -> Key | None:
        if isinstance(event, AgentEvent):
            return (event.tenant_id, event.aggregate_id)
        return None

    def fold(self, state: Any | None, stored: StoredEvent, event: DomainEvent) -> Any:
        assert isinstance(event, AgentEvent)
        if state is None:
            if not isinstance(event, AgentCreatedEvent):
                raise ValueError(f"{event.event_type} for unknown agent {event.aggregate_id}")
            return (AgentAggregate.from_created(event), stored.occurred_at)
        agent, _ = state
        if isinstance(event, AgentHeartbeatReceivedEvent | AgentHealthCheckPassedEvent):
            updated = state[1]  # liveness does not count as an update of the agent
        else:
            updated = stored.occurred_at
        return (agent.apply(event), updated)

    def row(self, state: Any) -> tuple[Any, ...]:
        agent, updated_at = state
        doc = agent_doc(agent, updated_at)
        caps = "|" + "|".join(agent.capability_names) + "|"
        return (
            agent.tenant_id,
            agent.agent_id,
            agent.name,
            agent.agent_type,
            agent.status.value,
            caps,
            doc["created_at"],
            updated_at,
            _json(doc),
        )

    def load(self, doc: str) -> Any:
        data = orjson.loads(doc)
        return (agent_from_doc(data), data["updated_at"])


class TasksProjection:
    """Tasks by tenant; with a :class:`~agentmesh.store.sealing.Sealer` the payload and
    result in each document are sealed at rest."""

    name = "tasks"
    table = Table(
        "tasks",
        ("tenant_id", "task_id"),
        (
            "tenant_id",
            "task_id",
            "task_type",
            "capability",
            "status",
            "agent_id",
            "priority",
            "submitted_at",
            "updated_at",
            "doc",
            "parent_task_id",
        ),
    )

    def __init__(self, sealer: Sealer | None = None) -> None:
        self.sealer = sealer

    def key(self, stored: StoredEvent, event: DomainEvent) -> Key | None:
        if isinstance(event, TaskEvent):
            return (event.tenant_id, event.aggregate_id)
        return None

    def fold(self, state: Any | None, stored: StoredEvent, event: DomainEvent) -> Any:
        assert isinstance(event, TaskEvent)
        if state is None:
            if not isinstance(event, TaskSubmittedEvent):
                raise ValueError(f"{event.event_type} for unknown task {event.aggregate_id}")
            return TaskAggregate.from_submitted(event)
        task: TaskAggregate = state
        return task.apply(event)

    def row(self, state: Any) -> tuple[Any, ...]:
        task: TaskAggregate = state
        doc = task_doc(task)
        return (
            task.tenant_id,
            task.task_id,
            task.task_type,
            task.capability,
            task.status.value,
            task.agent_id,
            task.priority,
            doc["submitted_at"],
            doc["updated_at"],
            _json(doc if self.sealer is None else self.sealer.seal_fields(doc, DOC_FIELDS)),
            task.parent_task_id,
        )

    def load(self, doc: str) -> Any:
        data = orjson.loads(doc)
        if self.sealer is not None:
            data = self.sealer.open_fields(data, DOC_FIELDS)
        return task_from_doc(data)


class TenantsProjection:
    name = "tenants"
    table = Table(
        "tenants",
        ("id",),
        (
            "id",
            "name",
            "api_key",
            "is_active",
            "max_agents",
            "max_messages_per_hour",
            "features",
            "created_at",
            "updated_at",
            "doc",
        ),
    )

    def key(self, stored: StoredEvent, event: DomainEvent) -> Key | None:
        return (event.aggregate_id,) if isinstance(event, TenantEvent) else None

    def fold(self, state: Any | None, stored: StoredEvent, event: DomainEvent) -> Any:
        assert isinstance(event, TenantEvent)
        if state is None:
            if not isinstance(event, TenantCreatedEvent):
                raise ValueError(f"{event.event_type} for unknown tenant {event.aggregate_id}")
            return (TenantAggregate.from_created(event), stored.occurred_at)
        tenant: TenantAggregate = state[0]
        return (tenant.apply(event), stored.occurred_at)

    def row(self, state: Any) -> tuple[Any, ...]:
        tenant, updated_at = state
        doc = tenant_doc(tenant, updated_at)
        return (
            tenant.tenant_id,
            tenant.name,
            None,
            tenant.is_active,
            tenant.max_agents,
            tenant.max_messages_per_hour,
            _json(list(tenant.features)),
            doc["created_at"],
            updated_at,
            _json(doc),
        )

    def load(self, doc: str) -> Any:
        data = orjson.loads(doc)
        return (tenant_from_doc(data), data["updated_at"])


class MessagesProjection:
    """``messages``: id, tenant, and the Fernet token of the envelope as ``payload``."""

    name = "messages"
    table = Table(
        "messages",
        ("id",),
        (
            "id",
            "tenant_id",
            "payload",
            "message_type",
            "subject",
            "source",
            "priority",
            "correlation_id",
            "encrypted_payload",
            "persisted_at",
        ),
        insert_only=True,
    )

    def key(self, stored: StoredEvent, event: DomainEvent) -> Key | None:
        return (event.message_id,) if isinstance(event, MessageRecordedEvent) else None

    def fold(self, state: Any | None, stored: StoredEvent, event: DomainEvent) -> Any:
        if state is not None:
            return state  # first record wins (a message id is recorded once)
        assert isinstance(event, MessageRecordedEvent)
        return (
            event.message_id,
            event.tenant_id,
            event.ciphertext,
            event.message_type,
            event.subject,
            event.source,
            event.priority,
            event.correlation_id,
            True,
            stored.occurred_at,
        )

    def row(self, state: Any) -> tuple[Any, ...]:
        return tuple(state)

    def load(self, doc: str) -> Any:  # pragma: no cover - insert-only
        raise NotImplementedError


def default_projections(sealer: Sealer | None = None) -> list[Projection]:
    return [
        AgentsProjection(),
        TasksProjection(sealer),
        TenantsProjection(),
        MessagesProjection(),
    ]
