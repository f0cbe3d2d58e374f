"""Where the control commands run: the local store (through the CQRS bus) or the REST API
of a running control plane. Both answer with the API's JSON documents."""

from __future__ import annotations

import getpass
from typing import Any, Literal, Protocol

from agentmesh.errors import AgentMeshError

Kind = Literal["agent", "task"]
"""The kinds of object the control commands manage."""


class Backend(Protocol):
    """The operations of ``agentmesh agent`` and ``agentmesh task`` on one tenant."""

    async def page(self, kind: Kind, tenant: str, params: dict[str, Any]) -> dict[str, Any]:
        """A page of ``kind`` objects: ``{"<kind>s": [...], "pagination": {...}}``."""
        ...

    async def get(self, kind: Kind, tenant: str, object_id: str) -> dict[str, Any]:
        """One object (NotFound when unknown)."""
        ...

    async def change(
        self, kind: Kind, tenant: str, object_id: str, action: str, reason: str
    ) -> dict[str, Any]:
        """Run ``action`` (pause, resume, terminate, cancel, retry) on an object; the
        object afterwards."""
        ...

    async def submit_task(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        """Submit a task; the new task."""
        ...


class LocalBackend:
    """Commands and queries on the local store, through the CQRS bus."""

    def __init__(self, persistence: Any, bus: Any) -> None:
        self.p = persistence
        self.bus = bus

    async def _query(self, query: object) -> Any:
        await self.p.projector.catch_up()
        return await self.bus.query(query)

    async def page(self, kind: Kind, tenant: str, params: dict[str, Any]) -> dict[str, Any]:
        from agentmesh.commands import ListAgents, ListTasks
        from agentmesh.domain import AgentStatus
        from agentmesh.store.queries import AgentListQuery

        query: object
        if kind == "agent":
            status = params.get("status")
            query = ListAgents(
                tenant,
                AgentListQuery(
                    status=AgentStatus(status) if status else None,
                    agent_type=params.get("agent_type"),
                    capabilities=tuple(params.get("capabilities") or ()),
                    limit=params["limit"],
                    offset=params["offset"],
                ),
            )
        else:
            query = ListTasks(tenant, **params)
        page = await self._query(query)
        out = {f"{kind}s": page.items, "pagination": page.pagination()}
        if kind == "task":
            out["next_cursor"] = page.next_cursor
        return out

    async def get(self, kind: Kind, tenant: str, object_id: str) -> dict[str, Any]:
        from agentmesh.commands import GetAgent, GetTask

        doc: dict[str, Any] = await self._query(
            GetAgent(tenant, object_id) if kind == "agent" else GetTask(tenant, object_id)
        )
        return doc

    async def change(
        self, kind: Kind, tenant: str, object_id: str, action: str, reason: str
    ) -> dict[str, Any]:
        from agentmesh.commands import (
            CancelTask,
            PauseAgent,
            ResumeAgent,
            RetryTask,
            TerminateAgent,
        )
        from agentmesh.commands.safety import ReleaseAgent

        await self.get(kind, tenant, object_id)
        command: object = {
            "pause": PauseAgent(tenant, object_id, reason),
            "resume": ResumeAgent(tenant, object_id),
            "terminate": TerminateAgent(tenant, object_id, reason),
            "cancel": CancelTask(tenant, object_id, reason),
            "retry": RetryTask(tenant, object_id),
            "release": ReleaseAgent(tenant, object_id, f"cli:{getpass.getuser()}", reason),
        }[action]
        await self.bus.execute(command)
        return await self.get(kind, tenant, object_id)

    async def submit_task(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        from agentmesh.commands import SubmitTask

        result = await self.bus.execute(SubmitTask(tenant_id=tenant, source="cli", **body))
        return await self.get("task", tenant, str(result.aggregate_id))


class RemoteBackend:
    """The same operations over the REST API of a running control plane."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def _call(
        self, method: str, path: str, *, params: Any = None, body: Any = None
    ) -> dict[str, Any]:
        import httpx

        try:
            r = await self.client.request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise AgentMeshError(
                f"cannot reach the control plane at {self.client.base_url}: {exc}",
                code="API_UNREACHABLE",
            ) from None
        try:
            data = r.json()
        except ValueError:
            data = {"error": r.text[:200] or r.reason_phrase, "code": f"HTTP_{r.status_code}"}
        if r.status_code >= 400:
            raise AgentMeshError(
                f"{data.get('error', 'error')} ({data.get('code', r.status_code)}, "
                f"HTTP {r.status_code})",
                code=str(data.get("code", "API_ERROR")),
            )
        if not isinstance(data, dict):
            raise AgentMeshError("unexpected answer from the control plane", code="API_ERROR")
        for key in ("timestamp", "api_version"):
            data.pop(key, None)
        return data

    async def page(self, kind: Kind, tenant: str, params: dict[str, Any]) -> dict[str, Any]:
        q = {k: v for k, v in params.items() if v not in (None, [], ())}
        return await self._call("GET", f"/v1/tenants/{tenant}/{kind}s", params=q)

    async def get(self, kind: Kind, tenant: str, object_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/tenants/{tenant}/{kind}s/{object_id}")

    async def change(
        self, kind: Kind, tenant: str, object_id: str, action: str, reason: str
    ) -> dict[str, Any]:
        body = {"reason": reason} if reason else None
        return await self._call(
            "POST", f"/v1/tenants/{tenant}/{kind}s/{object_id}/{action}", body=body
        )

    async def submit_task(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = {k: v for k, v in body.items() if v is not None}
        return await self._call("POST", f"/v1/tenants/{tenant}/tasks", body=payload)
