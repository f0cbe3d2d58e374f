"""Queries on the read models (what the REST API, CLI and UI call).

Every query takes a tenant id, except the tenant list (an admin path). Results are the
JSON documents of :mod:`agentmesh.store.documents`; pages carry the pagination block
``total, limit, offset, has_more, next_offset``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from agentmesh.domain import AGENT_TYPES, AgentStatus, TaskStatus
from agentmesh.errors import ValidationError
from agentmesh.store.db import Database
from agentmesh.store.documents import current_task_doc
from agentmesh.store.sealing import DOC_FIELDS, Sealer

SortBy = Literal["name", "created_at", "status"]
SortOrder = Literal["asc", "desc"]


@dataclasses.dataclass(frozen=True, slots=True)
class AgentListQuery:
    """Filters, pagination and sort of ``GET /v1/tenants/{t}/agents`` ."""

    status: AgentStatus | None = None
    agent_type: str | None = None
    capabilities: tuple[str, ...] = ()
    limit: int = 50
    offset: int = 0
    sort_by: SortBy = "created_at"
    sort_order: SortOrder = "desc"

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 1000:
            raise ValidationError(f"limit must be 1-1000, got {self.limit}")
        if not 0 <= self.offset <= 10000:
            raise ValidationError(f"offset must be 0-10000, got {self.offset}")
        if self.sort_by not in ("name", "created_at", "status"):
            raise ValidationError(
                f"sort_by must be name, created_at or status, got {self.sort_by!r}"
            )
        if self.sort_order not in ("asc", "desc"):
            raise ValidationError(f"sort_order must be asc or desc, got {self.sort_order!r}")
        if self.agent_type is not None and self.agent_type not in AGENT_TYPES:
            raise ValidationError(f"agent_type must be one of {', '.join(AGENT_TYPES)}")
        if self.status is not None:
            object.__setattr__(self, "status", AgentStatus(self.status))

    def filters_applied(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.status is not None:
            out["status"] = self.status.value
        if self.agent_type is not None:
            out["agent_type"] = self.agent_type
        if self.capabilities:
            out["capabilities"] = list(self.capabilities)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    """One page of documents and its pagination block."""

    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total

    @property
    def next_offset(self) -> int | None:
        return self.offset + len(self.items) if self.has_more else None

    def pagination(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "has_more": self.has_more,
            "next_offset": self.next_offset,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class StoredMessage:
    """A row of ``messages``; ``payload`` is the Fernet token of the envelope."""

    id: str
    tenant_id: str
    payload: str
    message_type: str
    subject: str
    source: str
    priority: int | None
    correlation_id: str | None
    persisted_at: str


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%|{escaped}|%"


class ReadModels:
    """Query functions over the read-model tables of one database."""

    def __init__(self, db: Database, sealer: Sealer | None = None) -> None:
        self.db = db
        self.sealer = sealer

    def _opened(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Task documents with their sealed payload and result opened."""
        docs = [current_task_doc(d) for d in docs]
        if self.sealer is None:
            return docs
        return [self.sealer.open_fields(d, DOC_FIELDS) for d in docs]

    async def _docs(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self.db.read() as c:
            rows = await c.fetch(sql, *args)
        return [orjson.loads(r[0]) for r in rows]

    async def _count(self, sql: str, *args: Any) -> int:
        async with self.db.read() as c:
            return int(await c.fetchval(sql, *args))

    # -- agents ------------------------------------------------------------------------
    async def list_agents(self, tenant_id: str, query: AgentListQuery | None = None) -> Page:
        """Agents of a tenant, filtered, sorted and paginated."""
        q = query or AgentListQuery()
        where = ["tenant_id = ?"]
        args: list[Any] = [tenant_id]
        if q.status is not None:
            where.append("status = ?")
            args.append(q.status.value)
        if q.agent_type is not None:
            where.append("agent_type = ?")
            args.append(q.agent_type)
        for cap in q.capabilities:
            where.append("capabilities LIKE ? ESCAPE '\\'")
            args.append(_like(cap))
        cond = " AND ".join(where)
        order = f"{q.sort_by} {q.sort_order.upper()}, agent_id {q.sort_order.upper()}"
        total = await self._count(f"SELECT COUNT(*) FROM agents WHERE {cond}", *args)
        items = await self._docs(
            f"SELECT doc FROM agents WHERE {cond} ORDER BY {order} LIMIT ? OFFSET ?",
            *args,
            q.limit,
            q.offset,
        )
        return Page(items, total, q.limit, q.offset)

    async def get_agent(self, tenant_id: str, agent_id: str) -> dict[str, Any] | None:
        docs = await self._docs(
            "SELECT doc FROM agents WHERE tenant_id = ? AND agent_id = ?", tenant_id, agent_id
        )
        return docs[0] if docs else None

    async def count_agents(self, tenant_id: str, *, live_only: bool = True) -> int:
        """Agents of a tenant (not TERMINATED when ``live_only``)."""
        if live_only:
            return await self._count(
                "SELECT COUNT(*) FROM agents WHERE tenant_id = ? AND status <> 'TERMINATED'",
                tenant_id,
            )
        return await self._count("SELECT COUNT(*) FROM agents WHERE tenant_id = ?", tenant_id)

    async def count_all_agents(self) -> int:
        """Agents of every tenant that are not TERMINATED (a mesh-wide figure)."""
        return await self._count("SELECT COUNT(*) FROM agents WHERE status <> 'TERMINATED'")

    async def count_messages(self) -> int:
        """Messages recorded for every tenant (a mesh-wide figure)."""
        return await self._count("SELECT COUNT(*) FROM messages")

    # -- tasks -------------------------------------------------------------------------
    async def list_tasks(
        self,
        tenant_id: str,
        *,
        status: TaskStatus | str | None = None,
        agent_id: str | None = None,
        parent_task_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """Tasks of a tenant, newest first (``parent_task_id``: a task's subtasks)."""
        if not 1 <= limit <= 1000 or not 0 <= offset <= 10000:
            raise ValidationError("limit must be 1-1000 and offset 0-10000")
        where = ["tenant_id = ?"]
        args: list[Any] = [tenant_id]
        if status is not None:
            where.append("status = ?")
            args.append(TaskStatus(status).value)
        if agent_id is not None:
            where.append("agent_id = ?")
            args.append(agent_id)
        if parent_task_id is not None:
            where.append("parent_task_id = ?")
            args.append(parent_task_id)
        cond = " AND ".join(where)
        total = await self._count(f"SELECT COUNT(*) FROM tasks WHERE {cond}", *args)
        items = self._opened(
            await self._docs(
                f"SELECT doc FROM tasks WHERE {cond} "
                "ORDER BY submitted_at DESC, task_id DESC LIMIT ? OFFSET ?",
                *args,
                limit,
                offset,
            )
        )
        return Page(items, total, limit, offset)

    async def submitted_since(self, tenant_id: str, since: float) -> list[str]:
        """When the tenant's tasks submitted after ``since`` (epoch seconds) were submitted."""
        start = datetime.fromtimestamp(since, UTC).isoformat()
        async with self.db.read() as c:
            rows = await c.fetch(
                "SELECT submitted_at FROM tasks WHERE tenant_id = ? AND submitted_at >= ?",
                tenant_id,
                start,
            )
        return [str(r[0]) for r in rows]

    async def get_task(self, tenant_id: str, task_id: str) -> dict[str, Any] | None:
        docs = self._opened(
            await self._docs(
                "SELECT doc FROM tasks WHERE tenant_id = ? AND task_id = ?", tenant_id, task_id
            )
        )
        return docs[0] if docs else None

    # -- tenants (admin) ---------------------------------------------------------------
    async def list_tenants(self, *, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        """Every tenant by name (admin path)."""
        return await self._docs(
            "SELECT doc FROM tenants ORDER BY name LIMIT ? OFFSET ?", limit, offset
        )

    async def count_tenants(self) -> int:
        return await self._count("SELECT COUNT(*) FROM tenants")

    async def get_tenant(self, tenant_id: str) -> dict[str, Any] | None:
        docs = await self._docs("SELECT doc FROM tenants WHERE id = ?", tenant_id)
        return docs[0] if docs else None

    async def get_tenant_by_name(self, name: str) -> dict[str, Any] | None:
        docs = await self._docs("SELECT doc FROM tenants WHERE name = ?", name)
        return docs[0] if docs else None

    # -- messages ----------------------------------------------------------------------
    async def get_message(
        self, message_id: str, tenant_id: str | None = None
    ) -> StoredMessage | None:
        """A recorded message (still encrypted); ``tenant_id=None`` is the admin path."""
        sql = (
            "SELECT id, tenant_id, payload, message_type, subject, source, priority, "
            "correlation_id, persisted_at FROM messages WHERE id = ?"
        )
        args: list[Any] = [message_id]
        if tenant_id is not None:
            sql += " AND tenant_id = ?"
            args.append(tenant_id)
        async with self.db.read() as c:
            rows = await c.fetch(sql, *args)
        if not rows:
            return None
        r = rows[0]
        return StoredMessage(
            str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), r[6], r[7], str(r[8])
        )
