"""Query handlers: thin wrappers over :class:`~agentmesh.store.queries.ReadModels`."""

from __future__ import annotations

from typing import Any

from agentmesh.errors import NotFound
from agentmesh.store.queries import Page, ReadModels, StoredMessage

from . import messages as m


class QueryHandlers:
    """Answers the queries of :mod:`agentmesh.commands.messages` from the read models."""

    def __init__(self, read_models: ReadModels) -> None:
        self.rm = read_models

    async def get_agent(self, q: m.GetAgent) -> dict[str, Any]:
        doc = await self.rm.get_agent(q.tenant_id, q.agent_id)
        if doc is None:
            raise NotFound(f"Agent {q.agent_id} not found", code="AGENT_NOT_FOUND")
        return doc

    async def list_agents(self, q: m.ListAgents) -> Page:
        return await self.rm.list_agents(q.tenant_id, q.query)

    async def get_task(self, q: m.GetTask) -> dict[str, Any]:
        doc = await self.rm.get_task(q.tenant_id, q.task_id)
        if doc is None:
            raise NotFound(f"Task {q.task_id} not found", code="TASK_NOT_FOUND")
        return doc

    async def list_tasks(self, q: m.ListTasks) -> Page:
        return await self.rm.list_tasks(
            q.tenant_id,
            status=q.status,
            agent_id=q.agent_id,
            parent_task_id=q.parent_task_id,
            limit=q.limit,
            offset=q.offset,
            cursor=q.cursor,
        )

    async def list_tenants(self, q: m.ListTenants) -> list[dict[str, Any]]:
        return await self.rm.list_tenants(limit=q.limit, offset=q.offset)

    async def get_tenant(self, q: m.GetTenant) -> dict[str, Any]:
        doc = await self.rm.get_tenant(q.tenant_id)
        if doc is None:
            raise NotFound(f"Tenant {q.tenant_id} not found", code="TENANT_NOT_FOUND")
        return doc

    async def get_message(self, q: m.GetMessage) -> StoredMessage:
        msg = await self.rm.get_message(q.message_id, q.tenant_id)
        if msg is None:
            raise NotFound(f"Message with ID: {q.message_id} not found.", code="MESSAGE_NOT_FOUND")
        return msg
