"""Tools of MCP servers for LLM agents (stdio and streamable HTTP, with the ``mcp`` SDK).

An LLM agent is configured with the servers it may use and, per server, the allow-list
of its tools (nothing else is offered, whatever the server lists)::

    config = LLMAgentConfig(mcp_servers=[
        MCPServerConfig("files", command="python", args=["files_server.py"], tools={"read"}),
        MCPServerConfig("search", url="http://127.0.0.1:9000/mcp", tools={"search"},
                        headers={"Authorization": "Bearer ..."}),
    ])

The model sees them as ``<server>__<tool>``. A result is untrusted input: it is checked by
the tenant's safety policy (content filter, PII, limits) before the model reads it (a
blocked one is replaced by an error; PII is redacted), known secrets are redacted, and it
is bounded in size like every tool answer (see :mod:`agentmesh.agents.llm_tools`).

Each server's connection lives in one task of its own (the SDK's transports are scoped
to the task that opened them); calls reach it through a queue. Call :meth:`MCPTools.aclose`
when the agent stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from agentmesh.errors import LLMUnavailable, ValidationError
from agentmesh.llm.base import ToolSpec

SEPARATOR = "__"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,24}$")


@dataclass(frozen=True, slots=True)
class MCPServerConfig:
    """One MCP server an LLM agent may use: ``command`` (+``args``, ``env``) for stdio, or
    ``url`` (+``headers``) for streamable HTTP; ``tools`` is the allow-list."""

    name: str
    tools: Collection[str]
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or SEPARATOR in self.name:
            raise ValidationError(
                f"MCP server name {self.name!r}: 1-24 letters, digits, '-' or '_' (no '__')"
            )
        if (self.command is None) == (self.url is None):
            raise ValidationError(f"MCP server {self.name!r}: give exactly one of command or url")
        if not self.tools:
            raise ValidationError(f"MCP server {self.name!r}: the tools allow-list is empty")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MCPServerConfig:
        """From JSON (``agentmesh agent start-llm-agent --mcp-config``)."""
        known = {"name", "tools", "command", "args", "env", "url", "headers", "timeout"}
        if not isinstance(raw, Mapping) or set(raw) - known:
            raise ValidationError(f"an MCP server entry takes the keys {sorted(known)}")
        if not isinstance(raw.get("tools"), list) or not isinstance(raw.get("args", []), list):
            raise ValidationError("an MCP server entry's 'tools' and 'args' are JSON lists")
        return cls(
            name=str(raw.get("name", "")),
            tools=frozenset(str(t) for t in raw.get("tools") or ()),
            command=raw.get("command"),
            args=tuple(str(a) for a in raw.get("args") or ()),
            env={str(k): str(v) for k, v in (raw.get("env") or {}).items()} or None,
            url=raw.get("url"),
            headers={str(k): str(v) for k, v in (raw.get("headers") or {}).items()},
            timeout=float(raw.get("timeout", 30.0)),
        )


def servers_from_file(path: Path) -> tuple[MCPServerConfig, ...]:
    """The MCP servers of a JSON file: a list of :meth:`MCPServerConfig.from_dict` entries."""
    import json

    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ValidationError(f"cannot read it: {exc.strerror}") from None
    except ValueError as exc:
        raise ValidationError(f"not JSON: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise ValidationError("it must hold a non-empty JSON list of MCP servers")
    return tuple(MCPServerConfig.from_dict(entry) for entry in raw)


class _Connection:
    """One server's client, owned by one task; requests go through a queue."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self.tools: dict[str, ToolSpec] = {}
        self._queue: asyncio.Queue[tuple[str, Any, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(), name=f"mcp:{config.name}")

    async def _client(self, stack: contextlib.AsyncExitStack) -> Any:
        from mcp import Client, StdioServerParameters

        c = self.config
        if c.command is not None:
            params = StdioServerParameters(
                command=c.command, args=list(c.args), env=dict(c.env) if c.env else None
            )
            return await stack.enter_async_context(Client(params, read_timeout_seconds=c.timeout))
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=dict(c.headers), timeout=c.timeout)
        )
        transport = streamable_http_client(str(c.url), http_client=http)
        return await stack.enter_async_context(Client(transport))

    async def _own(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await self._client(stack)
                listed = await client.list_tools()
                for tool in listed.tools:
                    if tool.name in self.config.tools:
                        name = f"{self.config.name}{SEPARATOR}{tool.name}"
                        self.tools[name] = ToolSpec(
                            name,
                            f"[MCP server {self.config.name}] {tool.description or tool.name}",
                            dict(tool.input_schema or {"type": "object"}),
                        )
                self._ready.set_result(None)
                while (item := await self._queue.get()) is not None:
                    tool_name, arguments, done = item
                    try:
                        result = await client.call_tool(tool_name, arguments)
                        if not done.done():
                            done.set_result(result)
                    except Exception as exc:  # noqa: BLE001 - the caller gets any failure of the call
                        if not done.done():
                            done.set_exception(exc)
        except Exception as exc:  # noqa: BLE001 - a server that cannot be reached is reported, never fatal
            logger.warning("MCP server {} unavailable: {}", self.config.name, exc)
            if not self._ready.done():
                self._ready.set_exception(
                    LLMUnavailable(f"MCP server {self.config.name!r} unavailable: {exc}")
                )
        finally:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None and not item[2].done():
                    item[2].set_exception(LLMUnavailable(f"MCP server {self.config.name!r} closed"))

    async def ready(self) -> None:
        await asyncio.shield(self._ready)

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        if self._task.done():
            raise LLMUnavailable(f"MCP server {self.config.name!r} is not connected")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((tool, arguments, done))
        return await asyncio.wait_for(done, self.config.timeout)

    async def close(self) -> None:
        await self._queue.put(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 10)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # retrieved: its failure was logged by _own already


class MCPTools:
    """The MCP tools of one LLM agent (see the module docstring)."""

    def __init__(self, servers: Collection[MCPServerConfig]) -> None:
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValidationError(f"MCP server names must be unique, got {names}")
        self.servers = tuple(servers)
        # the SDK is imported here, when the agent is built: imported inside a running task
        # the (long) import would block the loop, keep-alives included
        import mcp.client.streamable_http  # noqa: F401

        self._connections: dict[str, _Connection] = {}
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        """Connect to every server not yet connected (one failing server is skipped)."""
        async with self._lock:
            for config in self.servers:
                conn = self._connections.get(config.name)
                if conn is None or conn._task.done():
                    conn = self._connections[config.name] = _Connection(config)
                try:
                    await conn.ready()
                except LLMUnavailable:
                    continue

    def offer(self) -> dict[str, ToolSpec]:
        """The allow-listed tools of the connected servers, by their model-facing names."""
        out: dict[str, ToolSpec] = {}
        for conn in self._connections.values():
            if not conn._task.done():
                out.update(conn.tools)
        return out

    def owns(self, name: str) -> bool:
        return any(name in c.tools for c in self._connections.values())

    async def call(self, name: str, arguments: dict[str, Any]) -> tuple[Any, bool]:
        """Call ``<server>__<tool>``; returns (the result as JSON data, is_error)."""
        server, _, tool = name.partition(SEPARATOR)
        conn = self._connections.get(server)
        if conn is None or name not in conn.tools:
            raise ValidationError(f"no MCP tool {name!r}")
        result = await conn.call(tool, arguments)
        return _data(result), bool(getattr(result, "is_error", False))

    async def aclose(self) -> None:
        conns, self._connections = list(self._connections.values()), {}
        for conn in conns:
            await conn.close()


def _data(result: Any) -> Any:
    """An MCP tool result as JSON data: its structured content, else its text blocks."""
    structured = getattr(result, "structured_content", None)
    if structured is not None:
        return structured
    texts = [
        str(getattr(b, "text", "")) for b in getattr(result, "content", []) if hasattr(b, "text")
    ]
    return {"text": "\n".join(texts)}
