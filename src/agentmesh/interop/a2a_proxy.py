"""``agentmesh agent start-a2a-proxy``: a remote A2A agent as an agent of the mesh.

The remote agent's card is fetched once (``<url>/.well-known/agent-card.json``); each of
its skills becomes a capability of the proxy agent. A mesh task for one of them becomes an
A2A message to the remote agent (the payload as a data part, ``prompt`` as text, the skill
in ``metadata.skill``); the remote task's result (its artifacts' data, else text) is the
task's result, a remote failure fails the task (not retried)::

    runtime = await a2a_proxy_agent(mesh, "weather-1", "http://weather.example/a2a")
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from a2a.client import ClientConfig, create_client
from a2a.client.card_resolver import A2ACardResolver
from a2a.types import AgentCard, Message, Part, Role, SendMessageRequest, TaskState
from google.protobuf import json_format, struct_pb2

from agentmesh import ids
from agentmesh.errors import NonRetryableError, ValidationError

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.agent import AgentRuntime
    from agentmesh.runtime.context import TaskContext

FAILED = (TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_REJECTED, TaskState.TASK_STATE_CANCELED)


async def fetch_card(url: str, headers: Mapping[str, str] | None = None) -> AgentCard:
    """The Agent Card of the A2A agent at ``url`` (its well-known path)."""
    async with httpx.AsyncClient(headers=dict(headers or {}), timeout=30) as http:
        return await A2ACardResolver(http, url.rstrip("/")).get_agent_card()


def capabilities_of(card: AgentCard) -> dict[str, dict[str, Any]]:
    """The card's skills as capability specs (ids made capability-safe)."""
    out: dict[str, dict[str, Any]] = {}
    for skill in card.skills:
        cap = re.sub(r"[^A-Za-z0-9_-]", "-", skill.id)[:100]
        if ids.is_capability(cap):
            text = skill.description or skill.name or cap
            out[cap] = {"description": text[:1000], "input_schema": {"type": "object"}}
    if not out:
        raise ValidationError(f"the A2A agent {card.name!r} declares no usable skill")
    return out


def _message(payload: Mapping[str, Any], skill: str) -> Message:
    parts = []
    data = {k: v for k, v in payload.items() if k != "prompt"}
    if isinstance(payload.get("prompt"), str):
        parts.append(Part(text=payload["prompt"]))
    if data or not parts:
        value = struct_pb2.Value()
        json_format.ParseDict(data, value)
        parts.append(Part(data=value))
    return Message(
        role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=parts, metadata={"skill": skill}
    )


def _result(parts: Any) -> dict[str, Any] | None:
    texts = []
    for part in parts:
        if part.HasField("data"):
            value = json_format.MessageToDict(part.data)
            return value if isinstance(value, dict) else {"result": value}
        if part.HasField("text"):
            texts.append(part.text)
    return {"text": "\n".join(texts)} if texts else None


async def a2a_proxy_agent(
    mesh: Mesh,
    agent_id: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    card: AgentCard | None = None,
    max_concurrent: int = 8,
) -> AgentRuntime:
    """Add an agent to ``mesh`` whose capabilities are the skills of the A2A agent at
    ``url`` and whose tasks it runs (see the module docstring)."""
    card = card or await fetch_card(url, headers)
    specs = capabilities_of(card)
    skill_of = {re.sub(r"[^A-Za-z0-9_-]", "-", s.id)[:100]: s.id for s in card.skills}
    endpoint = url.rstrip("/")

    async def handle(task: TaskContext) -> dict[str, Any]:
        skill = skill_of.get(task.capability or "", next(iter(skill_of.values())))
        async with httpx.AsyncClient(headers=dict(headers or {}), timeout=300) as http:
            client = await create_client(
                card, client_config=ClientConfig(httpx_client=http, streaming=False)
            )
            final: Any = None
            async for event in client.send_message(
                SendMessageRequest(message=_message(task.payload, skill))
            ):
                await task.progress()
                if event.HasField("task"):
                    final = event.task
                elif event.HasField("message"):
                    return _result(event.message.parts) or {}
        if final is None:
            raise NonRetryableError(f"the A2A agent at {endpoint} answered no task")
        if final.status.state in FAILED:
            why = _result(final.status.message.parts) if final.status.HasField("message") else None
            raise NonRetryableError(
                f"the A2A agent at {endpoint} ended the task {TaskState.Name(final.status.state)}"
                + (f": {why.get('text', why)}" if why else "")
            )
        for artifact in final.artifacts:
            if (result := _result(artifact.parts)) is not None:
                return result
        return _result(final.status.message.parts) or {}

    return mesh.agent(
        agent_id,
        capabilities=list(specs),
        capability_specs=specs,
        max_concurrent=max_concurrent,
        description=f"A2A proxy of {card.name!r} at {endpoint}",
    )(handle)
