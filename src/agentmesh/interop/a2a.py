"""A2A (``a2a-sdk``) on the control plane: every live agent is an A2A agent.

For a live agent ``A`` of tenant ``T`` the control plane serves, under ``/a2a/T/A``:

* its Agent Card at ``/a2a/T/A/.well-known/agent-card.json`` (public): the registration's
  capabilities are the skills (description and input JSON Schema as declared), the
  security scheme is our JWT (HTTP bearer);
* the A2A JSON-RPC endpoint at ``/a2a/T/A/`` (a bearer JWT of ``T`` allowed to
  ``submit_task``): ``message/send`` and ``message/stream`` become a durable mesh task for
  ``A`` (the A2A task id is the mesh task id, recorded like any REST task); the stream
  carries the task's status (submitted, working, started by the agent, completed with the
  result as an artifact, failed) over SSE; ``tasks/get`` and ``tasks/cancel`` (which
  cancels the mesh task) work on it.

A message's data parts are merged into the task payload, its text becomes ``prompt``; the
skill is ``metadata.skill`` (default: the agent's first capability).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from a2a.helpers.proto_helpers import new_task
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    Part,
    SecurityRequirement,
    SecurityScheme,
    StringList,
    TaskState,
)
from google.protobuf import json_format, struct_pb2
from loguru import logger
from starlette.applications import Starlette

from agentmesh import ids, subjects
from agentmesh.domain.values import AgentStatus
from agentmesh.errors import AgentMeshError, Forbidden, Unauthorized
from agentmesh.transports import Message

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from agentmesh.api.context import ApiContext
    from agentmesh.runtime.registry import AgentRecord

PREFIX = "/a2a"
CARD_PATH = "/.well-known/agent-card.json"
OUTCOME_WAIT = 3600.0


def agent_card(record: AgentRecord, url: str) -> AgentCard:
    """The A2A Agent Card of a live agent (``url``: its JSON-RPC endpoint)."""
    skills = []
    for cap in sorted(record.capabilities):
        spec = record.capability_specs.get(cap) or {}
        schema = spec.get("input_schema") or {"type": "object"}
        description = str(spec.get("description") or f"The capability {cap!r}")
        skills.append(
            AgentSkill(
                id=cap,
                name=cap,
                description=f"{description} Input (JSON Schema): {json.dumps(schema)}",
                tags=[cap],
                input_modes=["application/json", "text/plain"],
                output_modes=["application/json"],
            )
        )
    return AgentCard(
        name=record.agent_id,
        description=f"AgentMesh agent {record.agent_id!r} of tenant {record.tenant_id!r}",
        version="1.0.0",
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json"],
        capabilities=AgentCapabilities(streaming=True),
        supported_interfaces=[AgentInterface(protocol_binding="JSONRPC", url=url)],
        skills=skills,
        security_schemes={
            "agentmeshJwt": SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer",
                    bearer_format="JWT",
                    description="A token of the tenant (`agentmesh token create`)",
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={"agentmeshJwt": StringList()})],
    )


def payload_of(context: RequestContext) -> dict[str, Any]:
    """The task payload of an A2A message: data parts merged, text as ``prompt``."""
    payload: dict[str, Any] = {}
    texts: list[str] = []
    message = context.message
    for part in message.parts if message is not None else []:
        if part.HasField("data"):
            value = json_format.MessageToDict(part.data)
            if isinstance(value, dict):
                payload.update(value)
        elif part.HasField("text") and part.text:
            texts.append(part.text)
    if texts:
        payload.setdefault("prompt", "\n".join(texts))
    return payload


def _data_part(value: Any) -> Part:
    v = struct_pb2.Value()
    json_format.ParseDict(value, v)
    return Part(data=v)


class MeshAgentExecutor(AgentExecutor):
    """Runs A2A requests as durable tasks of one mesh agent."""

    def __init__(self, ctx: ApiContext, tenant: str, agent_id: str, skills: list[str]) -> None:
        self.ctx, self.tenant, self.agent_id, self.skills = ctx, tenant, agent_id, skills

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        from agentmesh.commands import SubmitTask

        task_id, context_id = str(context.task_id), str(context.context_id)
        if context.current_task is None:  # the Task comes first, then its updates
            history = [context.message] if context.message is not None else []
            await event_queue.enqueue_event(
                new_task(task_id, context_id, TaskState.TASK_STATE_SUBMITTED, history=history)
            )
        updater = TaskUpdater(event_queue, task_id, context_id)
        meta = dict(context.message.metadata) if context.message is not None else {}
        skill = str(meta.get("skill") or (self.skills[0] if self.skills else ""))
        if skill not in self.skills:
            await updater.failed(
                _text(updater, f"unknown skill {skill!r}; use one of {self.skills}")
            )
            return
        transport = self.ctx.mesh.transport if self.ctx.mesh is not None else None
        if transport is None:
            await updater.failed(_text(updater, "no broker is attached to this control plane"))
            return
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def on_outcome(msg: Message) -> None:
            if not done.done():
                done.set_result(msg.envelope)

        async def on_progress(msg: Message) -> None:
            p = msg.envelope.payload
            if p.get("task_id") == task_id:
                kind = (msg.envelope.type or "").removeprefix("task.")
                note = f"{kind} by agent {p.get('agent_id')} (attempt {p.get('attempt')})"
                await updater.start_work(_text(updater, note))

        subs = [
            await transport.subscribe(subjects.task_outcomes(self.tenant, task_id), on_outcome),
            await transport.subscribe(subjects.task_progress_all(self.tenant), on_progress),
        ]
        try:
            await self.ctx.bus.execute(
                SubmitTask(
                    tenant_id=self.tenant,
                    capability=skill,
                    payload=payload_of(context),
                    task_id=task_id,
                    source="a2a",
                    to_agent=self.agent_id,
                )
            )
            await updater.start_work(_text(updater, f"task {task_id} offered to {self.agent_id}"))
            env = await asyncio.wait_for(done, OUTCOME_WAIT)
        except AgentMeshError as exc:
            await updater.failed(_text(updater, exc.message))
            return
        finally:
            for sub in subs:
                with contextlib.suppress(AgentMeshError):  # reason: the broker may be gone
                    await sub.unsubscribe()
        if env.type == "task.completed":
            await updater.add_artifact([_data_part(env.payload.get("result"))], name="result")
            await updater.complete()
        elif env.type == "task.cancelled":
            await updater.cancel()
        else:
            await updater.failed(_text(updater, str(env.payload.get("error") or env.type)))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        from agentmesh.commands import CancelTask

        task_id = str(context.task_id)
        with contextlib.suppress(AgentMeshError):  # reason: already terminal in the store
            await self.ctx.bus.execute(CancelTask(self.tenant, task_id, "cancelled over A2A"))
        if self.ctx.mesh is not None:
            with contextlib.suppress(AgentMeshError):  # reason: reaching the mesh is best effort
                await self.ctx.mesh.cancel(task_id, tenant=self.tenant)
        await TaskUpdater(event_queue, task_id, str(context.context_id)).cancel()


def _text(updater: TaskUpdater, text: str) -> Any:
    return updater.new_agent_message([Part(text=text)])


@dataclass
class _Served:
    key: tuple[str, ...]
    app: ASGIApp


class A2AGateway:
    """The ASGI app under ``/a2a``: one SDK server per live agent (see the module docstring)."""

    def __init__(self, context: Callable[[], ApiContext | None]) -> None:
        self._context = context
        self._apps: dict[tuple[str, str], _Served] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        ctx = self._context()
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        rest = path[len(root) :] if root and path.startswith(root) else path
        rest = rest.removeprefix(PREFIX)
        parts = rest.split("/", 3)
        if ctx is None or len(parts) < 3 or not parts[1] or not parts[2]:
            await _json(send, 404, {"error": "no such A2A agent", "code": "AGENT_NOT_FOUND"})
            return
        tenant, agent_id = parts[1], parts[2]
        inner = "/" + (parts[3] if len(parts) > 3 else "")
        record = None
        if ids.is_tenant_id(tenant) and ids.is_agent_id(agent_id) and ctx.mesh is not None:
            record = ctx.mesh.registry.get(tenant, agent_id)
        if record is None or record.status not in (AgentStatus.AVAILABLE, AgentStatus.BUSY):
            await _json(
                send, 404, {"error": f"no live agent {agent_id!r}", "code": "AGENT_NOT_FOUND"}
            )
            return
        if inner != CARD_PATH:
            try:
                _authorize(ctx, scope, tenant)
            except (Unauthorized, Forbidden) as exc:
                status = 401 if isinstance(exc, Unauthorized) else 403
                await _json(send, status, {"error": exc.message, "code": exc.code})
                return
        base = (
            _base_url(scope)
            + f"{root if root.endswith(PREFIX) else root + PREFIX}/{tenant}/{agent_id}/"
        )
        app = self._app(ctx, record, base)
        sub = dict(scope, path=inner, raw_path=inner.encode(), root_path="")
        await app(sub, receive, send)

    def _app(self, ctx: ApiContext, record: AgentRecord, url: str) -> ASGIApp:
        key = (
            url,
            *sorted(record.capabilities),
            json.dumps(record.capability_specs, sort_keys=True),
        )
        served = self._apps.get((record.tenant_id, record.agent_id))
        if served is not None and served.key == key:
            return served.app
        card = agent_card(record, url)
        executor = MeshAgentExecutor(
            ctx, record.tenant_id, record.agent_id, sorted(record.capabilities)
        )
        handler = DefaultRequestHandler(
            agent_executor=executor, task_store=InMemoryTaskStore(), agent_card=card
        )
        routes = [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/")]
        app = Starlette(routes=routes)
        self._apps[(record.tenant_id, record.agent_id)] = _Served(key, app)
        logger.info("A2A endpoint of agent {}/{} at {}", record.tenant_id, record.agent_id, url)
        return app


def _authorize(ctx: ApiContext, scope: Scope, tenant: str) -> None:
    from agentmesh.security.tenancy import Principal, check_operation

    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    auth = headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        raise Unauthorized("a bearer token is required", code="AUTH_REQUIRED")
    principal = Principal.from_claims(ctx.tokens.verify(auth[7:].strip()))
    if not principal.can_access_tenant(tenant):
        raise Forbidden(f"the token is not for tenant {tenant!r}", code="TENANT_FORBIDDEN")
    check_operation(principal, "submit_task")


def _base_url(scope: Scope) -> str:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


__all__ = ["A2AGateway", "MeshAgentExecutor", "agent_card", "payload_of"]
