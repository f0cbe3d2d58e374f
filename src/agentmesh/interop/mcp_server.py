"""``agentmesh mcp serve``: a tenant's capabilities as MCP tools, for any MCP client.

Each live capability of the tenant (from the registry's heartbeats, with the description
and JSON Schema its agents declared) is one tool. A tool call is a durable mesh task
(``mesh.submit`` + its outcome): it is recorded by the control plane like any other task,
survives agent crashes, and reports MCP progress notifications while it runs (submitted,
started by an agent, retrying, done). Served over stdio (the MCP client starts this
process) or streamable HTTP (``/mcp``; a bearer JWT of the tenant with the ``submit_task``
permission is required)::

    server = MeshToolServer(mesh, allow={"calculator"})
    await server.serve_stdio()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

import mcp_types as types
from loguru import logger
from mcp.server.lowlevel import Server

from agentmesh import subjects
from agentmesh.agents.llm_tools import LIVE, TOOL_NAME, schema_problem
from agentmesh.errors import AgentMeshError, RemoteError
from agentmesh.transports import Message

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from agentmesh.mesh import Mesh
    from agentmesh.security.tokens import TokenService

Report = Callable[[float, float | None, str | None], Awaitable[None]]
SERVER_NAME = "agentmesh"


class MeshToolServer:
    """The tools of one tenant's mesh (see the module docstring).

    ``allow``: the capabilities offered (None: every live one); ``timeout``: seconds a
    tool call waits for its task's outcome.
    """

    def __init__(
        self,
        mesh: Mesh,
        *,
        allow: Collection[str] | None = None,
        timeout: float = 300.0,
        settle: float | None = None,
    ) -> None:
        self.mesh = mesh
        self.allow = frozenset(allow) if allow is not None else None
        self.timeout = timeout
        self._born = time.monotonic()
        self._settle = (
            settle if settle is not None else 2 * mesh.settings.agentmesh_heartbeat_interval + 0.5
        )

    async def _settled(self) -> None:
        """Right after start, wait (bounded) until the registry heard the tenant's agents."""
        while time.monotonic() - self._born < self._settle:
            known = {c for r in self.mesh.registry.agents(self.mesh.tenant) for c in r.capabilities}
            if self.allow is not None and self.allow <= known:
                return
            await asyncio.sleep(0.05)

    def tools(self) -> list[types.Tool]:
        """The tools of this moment: live capabilities of the tenant (allow-listed)."""
        found: dict[str, types.Tool] = {}
        for record in self.mesh.registry.agents(self.mesh.tenant):
            if record.status not in LIVE:
                continue
            for cap in sorted(record.capabilities):
                if cap in found or not TOOL_NAME.match(cap):
                    continue
                if self.allow is not None and cap not in self.allow:
                    continue
                spec = record.capability_specs.get(cap) or {}
                found[cap] = types.Tool(
                    name=cap,
                    description=str(spec.get("description") or f"The mesh capability {cap!r}"),
                    input_schema=dict(spec.get("input_schema") or {"type": "object"}),
                )
        return [found[k] for k in sorted(found)]

    async def call(
        self, name: str, arguments: dict[str, Any] | None, report: Report
    ) -> types.CallToolResult:
        """Run one tool call as a durable mesh task (see the module docstring)."""
        await self._settled()
        offered = {t.name: t for t in self.tools()}
        tool = offered.get(name)
        if tool is None:
            return _error(f"tool {name!r} is not available on tenant {self.mesh.tenant!r}")
        args = dict(arguments or {})
        problem = schema_problem(tool.input_schema, args)
        if problem is not None:
            return _error(f"arguments do not match the schema of {name!r}: {problem}")
        task_id = str(uuid.uuid4())
        step = 0.0

        async def on_progress(msg: Message) -> None:
            nonlocal step
            p = msg.envelope.payload
            if p.get("task_id") != task_id:
                return
            step += 1
            kind = (msg.envelope.type or "").removeprefix("task.")
            note = (
                f"task {task_id} {kind} by agent {p.get('agent_id')} (attempt {p.get('attempt')})"
            )
            with contextlib.suppress(Exception):  # the client may be gone; the task runs on
                await report(step, None, note)

        sub = await self.mesh.transport.subscribe(
            subjects.task_progress_all(self.mesh.tenant), on_progress
        )
        try:
            await report(step, None, f"task {task_id} submitted to {name!r}")
            try:
                await self.mesh.submit(name, args, task_id=task_id)
                result = await self.mesh.wait_result(task_id, timeout=self.timeout)
            except RemoteError as exc:
                return _error(f"task {task_id} failed: {exc.message}", task_id)
            except TimeoutError:
                return _error(f"task {task_id} had no outcome within {self.timeout:g}s", task_id)
            except AgentMeshError as exc:
                return _error(f"task {task_id} could not run: {exc.message}", task_id)
        finally:
            await sub.unsubscribe()
        await report(step + 1, step + 1, f"task {task_id} completed")
        text = json.dumps(result, default=str)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=result,
            is_error=False,
            meta={"agentmesh/task_id": task_id},
        )

    def server(self) -> Server[Any]:
        """The MCP (low-level SDK) server answering ``tools/list`` and ``tools/call``."""

        async def list_tools(
            ctx: Any, params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            await self._settled()
            return types.ListToolsResult(tools=self.tools())

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            return await self.call(params.name, params.arguments, ctx.session.report_progress)

        return Server(
            SERVER_NAME,
            version="0.1.0",
            instructions=(
                f"Tools of the AgentMesh tenant {self.mesh.tenant!r}: each call is a durable "
                "task run by an agent of the mesh."
            ),
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )

    async def serve_stdio(self) -> None:
        """Serve one MCP client over this process's stdin/stdout until it closes them."""
        from mcp.server.stdio import stdio_server

        srv = self.server()
        async with stdio_server() as (read, write):
            await srv.run(read, write, srv.create_initialization_options())

    def http_app(self, tokens: TokenService, *, host: str = "127.0.0.1") -> ASGIApp:
        """A streamable-HTTP ASGI app (``/mcp``) that needs a bearer JWT of the tenant."""
        app = self.server().streamable_http_app(host=host)
        return BearerGuard(app, tokens, self.mesh.tenant)


def _error(message: str, task_id: str | None = None) -> types.CallToolResult:
    logger.info("mcp tool call refused or failed: {}", message)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)],
        is_error=True,
        meta={"agentmesh/task_id": task_id} if task_id else None,
    )


class BearerGuard:
    """ASGI middleware: HTTP requests need ``Authorization: Bearer <JWT>`` of ``tenant``
    (or a platform admin) whose roles may ``submit_task``; others get a JSON 401/403."""

    def __init__(self, app: ASGIApp, tokens: TokenService, tenant: str) -> None:
        self.app, self.tokens, self.tenant = app, tokens, tenant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from agentmesh.errors import Forbidden, Unauthorized
        from agentmesh.security.tenancy import Principal, check_operation

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        try:
            if not auth.lower().startswith("bearer "):
                raise Unauthorized("a bearer token is required", code="AUTH_REQUIRED")
            principal = Principal.from_claims(self.tokens.verify(auth[7:].strip()))
            if not principal.can_access_tenant(self.tenant):
                raise Forbidden(
                    f"the token is not for tenant {self.tenant!r}", code="TENANT_FORBIDDEN"
                )
            check_operation(principal, "submit_task")
        except (Unauthorized, Forbidden) as exc:
            status = 401 if isinstance(exc, Unauthorized) else 403
            body = json.dumps({"error": exc.message, "code": exc.code}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
