"""The tools of an LLM agent: capabilities of the other live agents of its tenant.

:class:`ToolBox` decides, once per task and only from the live registry and the agent's
configuration, which tools the model is offered. Nothing the model reads (task content,
tool results) can add a tool or lift the allow-list: a call to anything else is refused
and answered with an error, never executed. Arguments are validated against the
capability's JSON Schema before a mesh request is made; known secrets are redacted from
everything that leaves the agent; every call is audited as an ``llm.tool_call`` event
(``am.<tenant>.evt.llm.tool_call``) and a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh import subjects
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError
from agentmesh.llm.base import ToolCall, ToolSpec
from agentmesh.observability import tracing

if TYPE_CHECKING:
    from agentmesh.interop.mcp_client import MCPTools
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.context import TaskContext

TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")  # what Gemini and OpenAI accept
LIVE = (AgentStatus.AVAILABLE, AgentStatus.BUSY)
MAX_RESULT_CHARS = 16_000
DEPTH = "llm_call_depth"
"""Payload key of LLM-agent tools: how deep a chain of LLM agents calling each other is.
Set by the calling agent (never the model) when the tool's schema declares it."""
REDACTED = "[redacted]"


def depth_of(task: TaskContext) -> int:
    """The LLM call depth a task arrived with (0: not called by an LLM agent)."""
    value = task.payload.get(DEPTH, 0)
    return value if isinstance(value, int) and value >= 0 else 0


def redact(value: Any, secrets: Collection[str]) -> Any:
    """``value`` with every occurrence of a secret replaced (strings, lists, dicts)."""
    if not secrets:
        return value
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """Which capabilities an LLM agent may call and how.

    ``allow``: the allow-list (None: every live capability with a declared spec);
    ``durable``: capabilities called as durable tasks (``mesh.run``, for long work) instead
    of request/reply; ``timeout``: seconds per tool call.
    """

    allow: frozenset[str] | None = None
    durable: frozenset[str] = frozenset()
    timeout: float = 30.0


class ToolBox:
    """Offers tools to the model and runs the calls it makes (see the module docstring)."""

    def __init__(
        self,
        mesh: Mesh,
        *,
        policy: ToolPolicy,
        own: Collection[str] = (),
        secrets: Collection[str] = (),
        agent_id: str = "llm",
        agent_type: str = "llm",
        mcp: MCPTools | None = None,
    ) -> None:
        self.mesh = mesh
        self.mcp = mcp  # tools of MCP servers (allow-listed per server), results untrusted
        self.policy = policy
        self.agent_type = agent_type
        self.own = frozenset(own)
        self.secrets = tuple(s for s in secrets if s)
        self.agent_id = agent_id
        self._heard = asyncio.Event()
        self._born = time.monotonic()
        self._settled = policy.allow is None
        mesh.registry.on_change(lambda *_: self._heard.set())

    async def settle(self, tenant: str) -> None:
        """Right after start, wait (at most two heartbeat intervals) for allow-listed tools
        whose agents have not been heard yet: processes started together find each other.
        MCP servers not connected yet are connected."""
        if self.mcp is not None:
            await self.mcp.connect()
        if self._settled:
            return
        allow = self.policy.allow or frozenset()
        grace = 2 * self.mesh.settings.agentmesh_heartbeat_interval + 0.5
        while True:
            known = {c for r in self.mesh.registry.agents(tenant) for c in r.capabilities}
            remaining = self._born + grace - time.monotonic()
            if allow <= known or remaining <= 0:
                break
            self._heard.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._heard.wait(), remaining)
        self._settled = True

    def safety_allows(self, tool: str) -> bool:
        """Whether the tenant's safety policy lets this agent type call ``tool`` (the
        policy's ``tools`` allow-list of the type; no list: every tool). Read at each call,
        so a reloaded policy applies to the next tool call."""
        guard = getattr(self.mesh, "safety", None)
        if guard is None:
            return True
        allowed = guard.policy.tools.get(self.agent_type)
        return allowed is None or tool in allowed

    def offer(self, tenant: str) -> dict[str, ToolSpec]:
        """The tools of this moment: live capabilities of ``tenant`` inside the allow-list
        and the safety policy's tool list (never the agent's own capabilities unless
        allowed by name)."""
        allow = self.policy.allow
        tools: dict[str, ToolSpec] = {}
        for record in self.mesh.registry.agents(tenant):
            if record.status not in LIVE or record.agent_id == self.agent_id:
                continue
            for cap in record.capabilities:
                if cap in tools or not TOOL_NAME.match(cap):
                    continue
                if (allow is not None and cap not in allow) or not self.safety_allows(cap):
                    continue
                spec = record.capability_specs.get(cap)
                if spec is None and allow is None:
                    continue  # undeclared capabilities are offered only when allowed by name
                if cap in self.own and (allow is None or cap not in allow):
                    continue
                spec = spec or {"description": "", "input_schema": {"type": "object"}}
                tools[cap] = ToolSpec(
                    cap,
                    str(spec.get("description") or f"The mesh capability {cap!r}"),
                    dict(spec.get("input_schema") or {"type": "object"}),
                )
        if self.mcp is not None:
            for name, mcp_spec in self.mcp.offer().items():
                if name not in tools and self.safety_allows(name):
                    tools[name] = mcp_spec
        return tools

    async def call(
        self, task: TaskContext, call: ToolCall, offered: Mapping[str, ToolSpec]
    ) -> tuple[Any, dict[str, Any]]:
        """Run one tool call; returns (what the model reads, the record for the result)."""
        with tracing.span("tool.call", kind=tracing.SpanKind.CLIENT) as span:
            answer, record = await self._call(task, call, offered)
            if span is not None:
                span.set_attributes(
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": call.name,
                        "gen_ai.tool.call.id": call.id,
                        "agentmesh.tool.status": record["status"],
                    }
                )
                if record["status"] != "ok":
                    span.set_status(tracing.Status(tracing.StatusCode.ERROR, record["status"]))
        return answer, record

    async def _call(
        self, task: TaskContext, call: ToolCall, offered: Mapping[str, ToolSpec]
    ) -> tuple[Any, dict[str, Any]]:
        started = time.perf_counter()
        args = redact(call.arguments, self.secrets)
        record: dict[str, Any] = {"id": call.id, "name": call.name, "arguments": args}
        spec = offered.get(call.name)
        if spec is None:
            record["status"] = "refused"
            answer: Any = {"error": f"tool {call.name!r} is not available"}
        elif not self.safety_allows(call.name):  # the policy changed since the offer
            record["status"] = "denied"
            answer = {"error": f"tool {call.name!r} is not allowed by the safety policy"}
        elif (problem := schema_problem(spec.parameters, call.arguments)) is not None:
            record["status"] = "invalid"
            answer = {"error": f"arguments do not match the schema of {call.name!r}: {problem}"}
        else:
            payload = dict(call.arguments)
            payload.pop(DEPTH, None)  # the model never sets the depth
            if DEPTH in (spec.parameters.get("properties") or {}):
                payload[DEPTH] = depth_of(task) + 1
            if self.mcp is not None and self.mcp.owns(call.name):
                answer = await self._call_mcp(call.name, payload, record)
            else:
                answer = await self._call_mesh(call.name, payload, record)
        if "error" in answer and record["status"] != "ok":
            record["error"] = answer["error"]
        record["ms"] = round((time.perf_counter() - started) * 1000, 3)
        await self._audit(task, record)
        return _bounded(answer), record

    async def _call_mesh(self, name: str, payload: dict[str, Any], record: dict[str, Any]) -> Any:
        """A mesh capability as a tool: request/reply, or a durable task when listed so."""
        try:
            if name in self.policy.durable:
                result = await self.mesh.run(name, payload, timeout=self.policy.timeout)
            else:
                result = await self.mesh.request(name, payload, timeout=self.policy.timeout)
        except (AgentMeshError, TimeoutError) as exc:
            record["status"] = "error"
            message = str(exc) or type(exc).__name__
            return {"error": redact(f"{type(exc).__name__}: {message}", self.secrets)}
        record["status"] = "ok"
        answer = redact(result, self.secrets)
        record["result"] = answer
        return answer

    async def _call_mcp(self, name: str, args: dict[str, Any], record: dict[str, Any]) -> Any:
        """An MCP tool call; its result is untrusted: the safety policy checks it before
        the model reads it (blocked: an error instead; PII redacted)."""
        assert self.mcp is not None
        record["source"] = "mcp"
        try:
            data, is_error = await self.mcp.call(name, args)
        except Exception as exc:  # noqa: BLE001 - any failure of a foreign server is the tool's error
            record["status"] = "error"
            return {"error": redact(f"{type(exc).__name__}: {exc}", self.secrets)}
        guard = self.mesh.safety
        if guard is not None:
            verdict = guard.checker.check_result(data, agent_type=self.agent_type)
            if not verdict.allowed:
                record["status"] = "blocked"
                return {"error": f"the result of {name!r} was withheld: {verdict.reason}"}
            data = verdict.value
        record["status"] = "error" if is_error else "ok"
        answer = redact(data, self.secrets)
        if is_error:
            return {"error": answer}
        record["result"] = answer
        return answer

    async def call_all(
        self, task: TaskContext, calls: Collection[ToolCall], offered: Mapping[str, ToolSpec]
    ) -> list[tuple[Any, dict[str, Any]]]:
        """The calls of one model turn, concurrently, answers in call order."""
        return list(await asyncio.gather(*(self.call(task, c, offered) for c in calls)))

    async def _audit(self, task: TaskContext, record: dict[str, Any]) -> None:
        tenant = task.tenant_id
        entry = {
            "task_id": task.task_id,
            "agent_id": self.agent_id,
            "tool": record["name"],
            "status": record["status"],
            "arguments": record["arguments"],
            "ms": record["ms"],
            **({"error": record["error"]} if "error" in record else {}),
        }
        logger.info(
            "llm agent {} tool call {} -> {} ({} ms)",
            self.agent_id,
            record["name"],
            record["status"],
            record["ms"],
        )
        env = Envelope.create("llm.tool_call", entry, tenant_id=tenant, source=self.agent_id)
        try:
            await self.mesh.transport.publish(subjects.event(tenant, "llm.tool_call"), env)
        except AgentMeshError as exc:  # the call happened; losing its audit event is logged
            logger.warning("audit event of tool call {} not published: {}", record["id"], exc)


def schema_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    """Why ``value`` does not match the JSON Schema, or None when it does."""
    import jsonschema

    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except jsonschema.exceptions.SchemaError as exc:
        return f"the schema itself is invalid: {exc.message}"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where or '(root)'}: {error.message}"


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """One compiled validator per schema (building one costs far more than using it)."""
    import jsonschema

    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema)(schema)


def schema_error(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is not a valid JSON Schema, or None."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        return str(exc.message)
    return None


def _bounded(answer: Any) -> Any:
    """Tool answers beyond ``MAX_RESULT_CHARS`` of JSON are cut (and say so)."""
    text = json.dumps(answer, default=str)
    if len(text) <= MAX_RESULT_CHARS:
        return answer
    return {"truncated": True, "partial": text[:MAX_RESULT_CHARS]}
