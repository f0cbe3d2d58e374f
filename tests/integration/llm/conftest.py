"""An LLM agent's world in one process: a mesh (memory broker), tool agents with declared
capability specs, and the local model server speaking the real APIs."""

from __future__ import annotations

import ast
import operator
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.agents.llm import LLMAgentConfig, llm_agent
from agentmesh.llm import ResilientProvider, build_provider
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.testing import LocalModelServer
from tests.helpers import eventually, fast_settings

KEY = "sk-llm-agent-" + "x" * 24
CALC_SPEC = {
    "description": "Evaluates an arithmetic expression such as '6*7'",
    "input_schema": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
}
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate(expression: str) -> float:
    """Arithmetic without eval: + - * / on numbers."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](walk(node.left), walk(node.right)))
        raise ValueError(f"not arithmetic: {expression!r}")

    return walk(ast.parse(expression, mode="eval").body)


@dataclass
class World:
    mesh: Mesh
    server: LocalModelServer
    tenant: str
    calls: dict[str, int] = field(default_factory=dict)
    providers: list[ResilientProvider] = field(default_factory=list)

    def tool(
        self,
        name: str,
        answer: Callable[[dict[str, Any]], Any],
        spec: dict[str, Any] | None = None,
        agent_id: str | None = None,
    ) -> AgentRuntime:
        """A tool agent for capability ``name`` that counts its calls."""
        self.calls[name] = 0

        async def handle(task: TaskContext) -> Any:
            self.calls[name] += 1
            return answer(task.payload)

        return self.mesh.agent(
            agent_id or f"{name.replace('_', '-')}-agent",
            capabilities=[name],
            capability_specs={name: spec or {"description": f"the {name} tool"}},
        )(handle)

    def calculator(self) -> AgentRuntime:
        return self.tool(
            "calculator", lambda p: {"value": evaluate(str(p["expression"]))}, CALC_SPEC
        )

    def llm(
        self, agent_id: str = "researcher", kind: str = "openai", **config: Any
    ) -> AgentRuntime:
        base = self.server.openai_url if kind == "openai" else self.server.url
        settings = self.mesh.settings.model_copy(
            update={
                "openai_api_key": KEY,
                "gemini_api_key": KEY,
                "gcp_project_id": "proj-1",
                "google_application_credentials": str(
                    self.server.write_service_account(self.mesh.settings.data_dir / "sa.json")
                ),
            }
        )
        provider = ResilientProvider(
            build_provider(kind, settings, base_url=base), base_delay=0.01, timeout=10
        )
        self.providers.append(provider)
        caps = config.pop("capabilities", ["research"])
        return llm_agent(
            self.mesh,
            agent_id,
            provider,
            capabilities=caps,
            config=LLMAgentConfig(**config),
            secrets=[KEY],
        )

    async def start(self, agents: int) -> None:
        await self.mesh.start()
        await eventually(lambda: len(self.mesh.registry.agents(self.tenant)) >= agents, 10)


@pytest.fixture
async def world(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    tenant = "t" + uuid.uuid4().hex[:8]
    # tests marked `llm_agent_alone` judge the LLM agent's own defenses, without the
    # safety policy in front of it (which would stop some of the same text earlier)
    alone = request.node.get_closest_marker("llm_agent_alone") is not None
    settings = fast_settings(tmp_path, agentmesh_heartbeat_interval=0.1, agentmesh_safety=not alone)
    mesh = Mesh(f"memory://{uuid.uuid4().hex}", tenant=tenant, settings=settings)
    async with LocalModelServer(api_key=KEY) as server:
        w = World(mesh, server, tenant)
        try:
            yield w
        finally:
            await mesh.stop()
            for p in w.providers:
                await p.aclose()
