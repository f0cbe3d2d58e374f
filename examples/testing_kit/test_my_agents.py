"""How to test your own agents with ``agentmesh.testing``: no broker, no model, no servers.

Run it: ``cd examples/testing_kit && pytest -q`` (its conftest.py enables the plugin).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.agents.llm import LLMAgentConfig, llm_agent
from agentmesh.errors import BrokerUnavailable
from agentmesh.llm import resilient_provider
from agentmesh.testing import Chaos, LocalModelServer, Reply, ready

CALC = {
    "description": "Evaluates a sum of integers like '2+3'",
    "input_schema": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
}


async def add_calculator(mesh: Mesh, agent_id: str = "calc-1") -> None:
    """The agent under test (sums integers), added to the running mesh and ready."""

    @mesh.agent(agent_id, capabilities=["calculator"], capability_specs={"calculator": CALC})
    async def calculator(task: TaskContext) -> dict[str, Any]:
        return {"value": sum(int(x) for x in task.payload["expression"].split("+"))}

    await ready(mesh, agent_id)


async def test_an_agent_answers(mesh: Mesh) -> None:
    await add_calculator(mesh)
    assert await mesh.request("calculator", {"expression": "2+3"}) == {"value": 5}
    assert await mesh.run("calculator", {"expression": "40+2"}) == {"value": 42}


async def test_an_llm_agent_uses_the_agent_as_a_tool(
    mesh: Mesh, model_server: LocalModelServer
) -> None:
    await add_calculator(mesh)
    model_server.script(
        Reply.call("calculator", {"expression": "6+7"}),  # the model asks for the tool ...
        Reply.say("It is 13."),  # ... and answers with its result
    )
    settings = mesh.settings.model_copy(update={"openai_api_key": "offline"})
    provider = resilient_provider("openai", settings, base_url=model_server.openai_url)
    config = LLMAgentConfig(tools={"calculator"})
    llm_agent(mesh, "assistant-1", provider, capabilities=["assist"], config=config)
    try:
        await ready(mesh)
        out = await mesh.run("assist", {"prompt": "What is 6+7?"}, timeout=30)
    finally:
        await provider.aclose()
    assert out["text"] == "It is 13."
    assert out["tool_calls"][0]["result"] == {"value": 13}
    assert model_server.requests[-1].tool_results == [("calculator", {"value": 13})]


async def test_a_killed_worker_loses_no_task(mesh: Mesh, chaos: Chaos) -> None:
    started = asyncio.Event()

    @mesh.agent("slow-1", capabilities=["slow"])
    async def stuck(task: TaskContext) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()  # never finishes: it is killed first
        return {}

    task_id = await mesh.submit("slow", {"n": 1})
    await asyncio.wait_for(started.wait(), 10)
    await chaos.kill("slow-1")

    @mesh.agent("slow-2", capabilities=["slow"])
    async def quick(task: TaskContext) -> dict[str, Any]:
        return {"done_by": "slow-2", "n": task.payload["n"]}

    # the unacked task comes back after the ack wait and the other worker finishes it
    assert await mesh.wait_result(task_id, timeout=15) == {"done_by": "slow-2", "n": 1}


async def test_a_dropped_delivery_comes_back(mesh: Mesh, chaos: Chaos) -> None:
    await add_calculator(mesh)
    with chaos.drop(f"am.{mesh.tenant}.task.calculator", count=1) as rule:
        assert await mesh.run("calculator", {"expression": "1+1"}, timeout=15) == {"value": 2}
    assert rule.dropped == 1


async def test_a_delayed_delivery_is_late_not_lost(mesh: Mesh, chaos: Chaos) -> None:
    await add_calculator(mesh)
    loop = asyncio.get_running_loop()
    with chaos.delay(f"am.{mesh.tenant}.rpc.calculator", 0.3):
        start = loop.time()
        assert await mesh.request("calculator", {"expression": "2+2"}) == {"value": 4}
    assert loop.time() - start >= 0.3


async def test_a_broker_outage_is_an_error_then_heals(mesh: Mesh, chaos: Chaos) -> None:
    await add_calculator(mesh)
    async with chaos.outage():
        with pytest.raises(BrokerUnavailable):
            await mesh.transport.publish("am.x.evt.note", _note(mesh))
    assert await mesh.request("calculator", {"expression": "3+3"}) == {"value": 6}


async def test_a_killed_agent_restarts(mesh: Mesh, chaos: Chaos) -> None:
    await add_calculator(mesh)
    await chaos.kill("calc-1")
    with pytest.raises(Exception, match="no agent serves"):
        await mesh.request("calculator", {"expression": "1+2"}, timeout=1)
    await chaos.restart("calc-1")
    assert await mesh.request("calculator", {"expression": "1+2"}) == {"value": 3}


def _note(mesh: Mesh) -> Any:
    from agentmesh import Envelope

    return Envelope.create("note", {"text": "hi"}, tenant_id=mesh.tenant)
