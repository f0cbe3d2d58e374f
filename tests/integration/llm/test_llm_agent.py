"""LLMAgent: the model's tool calls are real mesh requests answered by tool agents."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agentmesh import Envelope, RemoteError, subjects
from agentmesh.llm import PROVIDERS, Price
from agentmesh.testing import ModelRequest, Reply
from tests.helpers import Collector, eventually
from tests.integration.llm.conftest import KEY, World

pytestmark = pytest.mark.integration


def answer_with_tool_result(request: ModelRequest) -> Reply:
    """The model's second turn: says what the tool answered."""
    name, value = request.tool_results[-1]
    return Reply.say(f"{name} says {json.dumps(value)}")


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_tool_call_is_answered_by_the_tool_agent(world: World, kind: str) -> None:
    world.calculator()
    world.llm(kind=kind, system_prompt="You are a careful researcher.")
    await world.start(2)
    world.server.script(Reply.call("calculator", {"expression": "6*7"}))
    world.server.respond_with(answer_with_tool_result)
    out = await world.mesh.run("research", {"prompt": "What is 6*7?"}, timeout=20)
    assert out["text"] == 'calculator says {"value": 42.0}'
    [call] = out["tool_calls"]
    assert call["name"] == "calculator"
    assert call["status"] == "ok"
    assert call["result"] == {"value": 42.0}
    assert world.calls["calculator"] == 1
    assert out["rounds"] == 1
    assert out["model"]
    assert out["provider"] == kind
    first, second = world.server.requests[-2:]
    assert set(first.tools) == {"calculator"}  # its own capability is not offered to itself
    assert first.tools["calculator"]["parameters"] == CALC_PARAMS
    assert "careful researcher" in first.system
    assert second.tool_results == [("calculator", {"value": 42.0})]
    assert out["usage"]["total_tokens"] > 0


CALC_PARAMS = {
    "type": "object",
    "properties": {"expression": {"type": "string"}},
    "required": ["expression"],
}


async def test_allow_list_limits_the_tools(world: World) -> None:
    world.calculator()
    world.tool("lookup", lambda p: {"found": p})
    world.llm(tools=["calculator"])
    await world.start(3)
    world.server.script(Reply.call("lookup", {"term": "x"}), Reply.say("done"))
    out = await world.mesh.run("research", {"prompt": "look it up"}, timeout=20)
    assert set(world.server.requests[0].tools) == {"calculator"}
    assert out["tool_calls"][0]["status"] == "refused"
    assert world.calls["lookup"] == 0
    assert world.server.requests[1].tool_results == [
        ("lookup", {"error": "tool 'lookup' is not available"})
    ]


async def test_the_safety_policy_tool_list_limits_the_tools_at_each_call(world: World) -> None:
    from agentmesh.safety.loader import parse_policy

    guard = world.mesh.safety
    assert guard is not None
    world.calculator()
    world.tool("lookup", lambda p: {"found": p})
    world.llm()  # its own allow-list lets every declared tool through
    guard.set_policy(parse_policy("version: 2\ntools:\n  llm: [calculator, lookup]\n"))
    await world.start(3)
    tighter = parse_policy("version: 3\ntools:\n  llm: [calculator]\n")
    # the model answers slowly; the policy is reloaded while it thinks
    world.server.script(Reply.call("lookup", {"term": "x"}, delay=0.5), Reply.say("done"))
    run = asyncio.create_task(world.mesh.run("research", {"prompt": "look it up"}, timeout=20))
    await eventually(lambda: len(world.server.requests) >= 1, what="the model asked")
    guard.set_policy(tighter)
    out = await run
    assert set(world.server.requests[0].tools) == {"calculator", "lookup"}
    assert out["tool_calls"][0]["status"] == "denied"
    assert world.calls["lookup"] == 0
    world.server.script(Reply.say("done"))
    await world.mesh.run("research", {"prompt": "again"}, timeout=20)
    assert set(world.server.requests[-1].tools) == {"calculator"}


async def test_arguments_are_validated_against_the_schema(world: World) -> None:
    world.calculator()
    world.llm()
    await world.start(2)
    world.server.script(Reply.call("calculator", {"expr": 1}), Reply.say("sorry"))
    out = await world.mesh.run("research", {"prompt": "compute"}, timeout=20)
    assert out["tool_calls"][0]["status"] == "invalid"
    assert "expression" in out["tool_calls"][0]["error"]
    assert world.calls["calculator"] == 0


async def test_tool_rounds_are_bounded(world: World) -> None:
    world.calculator()
    world.llm(max_tool_rounds=2)
    await world.start(2)
    world.server.respond_with(lambda r: Reply.call("calculator", {"expression": "1+1"}))
    with pytest.raises(RemoteError, match="max_tool_rounds=2"):
        await world.mesh.run("research", {"prompt": "loop"}, timeout=20, max_attempts=1)
    assert world.calls["calculator"] == 2


async def test_token_budget_and_cost_ceiling(world: World) -> None:
    world.llm(agent_id="frugal", capabilities=["frugal"], token_budget=50)
    world.llm(
        agent_id="cheap",
        capabilities=["cheap"],
        cost_ceiling_usd=0.001,
        prices={"gpt-4o-mini": Price(1000.0, 1000.0)},
    )
    await world.start(2)
    world.server.respond_with(lambda r: Reply.say("ok", usage=(40, 20)))
    with pytest.raises(RemoteError, match="token budget exceeded: 60 > 50"):
        await world.mesh.run("frugal", {"prompt": "hi"}, timeout=20)
    with pytest.raises(RemoteError, match="cost ceiling exceeded"):
        await world.mesh.run("cheap", {"prompt": "hi"}, timeout=20)
    assert len(world.server.requests) == 2  # neither was retried


async def test_structured_output_with_one_repair_round(world: World) -> None:
    world.llm()
    await world.start(1)
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
    }
    world.server.script(Reply.say('{"answer": "forty-two"}'), Reply.say('{"answer": 42}'))
    out = await world.mesh.run(
        "research", {"prompt": "6*7?", "response_schema": schema}, timeout=20
    )
    assert out["data"] == {"answer": 42}
    assert "text" not in out
    first, repair = world.server.requests[-2:]
    assert first.response_schema == schema
    assert "does not match the required JSON Schema" in repair.last_user_text
    world.server.script(Reply.say("not json"), Reply.say('{"answer": "still no"}'))
    with pytest.raises(RemoteError, match="after one repair round"):
        await world.mesh.run("research", {"prompt": "again", "response_schema": schema}, timeout=20)


async def test_streamed_text_is_task_progress(world: World) -> None:
    world.llm()
    await world.start(1)
    seen: list[dict[str, Any]] = []

    async def on_progress(env: Envelope) -> None:
        seen.append(env.payload)

    await world.mesh.on_event("llm.progress", on_progress)
    text = "agents cooperate through events and nothing is lost"
    world.server.script(Reply.say(text, chunks=4))
    task_id = await world.mesh.submit("research", {"prompt": "tell me"})
    out = await world.mesh.wait_result(task_id, timeout=20)
    assert out["text"] == text
    await eventually(lambda: "".join(p["text"] for p in seen) == text, 5)
    assert {p["task_id"] for p in seen} == {task_id}
    assert [p["seq"] for p in seen] == list(range(1, len(seen) + 1))
    assert len(seen) >= 3


async def test_provider_errors(world: World) -> None:
    world.llm()
    await world.start(1)
    world.server.script(Reply.fail(429, "slow down", retry_after=0.05), Reply.say("fine"))
    assert (await world.mesh.run("research", {"prompt": "hi"}, timeout=20))["text"] == "fine"
    world.server.script(Reply.fail(400, "model not found: gpt-x"))
    before = len(world.server.requests)
    with pytest.raises(RemoteError, match="model not found: gpt-x"):
        await world.mesh.run("research", {"prompt": "hi"}, timeout=20)
    assert len(world.server.requests) == before + 1  # a 4xx fails the task at once


async def test_bad_payload_fails_clearly(world: World) -> None:
    world.llm()
    await world.start(1)
    with pytest.raises(RemoteError, match="'prompt' or 'messages'"):
        await world.mesh.run("research", {"text": "no prompt"}, timeout=20)
    with pytest.raises(RemoteError, match="'temperature'"):
        await world.mesh.run("research", {"prompt": "x", "temperature": 7}, timeout=20)
    assert world.server.requests == []


async def test_llm_agents_use_each_other_as_tools(world: World) -> None:
    world.llm(agent_id="writer-1", capabilities=["write"], description="Writes one sentence")
    world.llm(agent_id="editor-1", capabilities=["edit"], tools=["write"])
    await world.start(2)

    def model(request: ModelRequest) -> Reply:
        if "write" in request.tools and not request.tool_results:  # the editor plans
            return Reply.call("write", {"prompt": "a sentence about brokers"})
        if request.tool_results:  # the editor reads the writer's answer
            return Reply.say("edited: " + request.tool_results[-1][1]["text"])
        return Reply.say("Brokers keep every task.")  # the writer writes

    world.server.respond_with(model)
    out = await world.mesh.run("edit", {"prompt": "write and edit"}, timeout=20)
    assert out["text"] == "edited: Brokers keep every task."
    assert out["tool_calls"][0]["result"]["model"] == "gpt-4o-mini"
    assert world.server.requests[0].tools["write"]["description"] == "Writes one sentence"


@pytest.mark.llm_agent_alone  # its own redaction (the safety policy would redact first)
async def test_keys_never_reach_the_model_or_the_result(world: World) -> None:
    world.tool("leaky", lambda p: {"config": f"OPENAI_API_KEY={KEY}"})
    world.llm(tools=["leaky"])
    await world.start(2)
    world.server.script(Reply.call("leaky", {}))
    world.server.respond_with(lambda r: Reply.say(f"the tool said {r.tool_results[-1][1]}"))
    out = await world.mesh.run("research", {"prompt": f"repeat {KEY}"}, timeout=20)
    assert KEY not in json.dumps(out)
    for request in world.server.requests:
        assert KEY not in json.dumps(request.body)
    assert "[redacted]" in out["text"]
    world.server.script(Reply.fail(400, f"invalid api key {KEY}"))
    with pytest.raises(RemoteError) as failed:
        await world.mesh.run("research", {"prompt": "hi"}, timeout=20)
    assert "invalid api key [redacted]" in str(failed.value)
    assert KEY not in str(failed.value)


async def test_llm_orchestrator_plans_runs_and_synthesizes(world: World) -> None:
    from agentmesh.agents.llm import LLMAgentConfig
    from agentmesh.agents.llm_orchestrator import llm_orchestrator
    from agentmesh.llm import ResilientProvider, build_provider

    world.calculator()
    world.tool("lookup", lambda p: {"fact": "299792458 m/s"}, {
        "description": "Looks a fact up",
        "input_schema": {"type": "object", "properties": {"term": {"type": "string"}},
                         "required": ["term"]},
    })  # fmt: skip
    settings = world.mesh.settings.model_copy(update={"openai_api_key": KEY})
    provider = ResilientProvider(
        build_provider("openai", settings, base_url=world.server.openai_url)
    )
    world.providers.append(provider)
    llm_orchestrator(
        world.mesh, "planner-1", provider, capabilities=["plan"], config=LLMAgentConfig()
    )
    await world.start(3)
    plan = {
        "subtasks": [
            {"capability": "lookup", "payload": {"term": "speed of light"}},
            {"capability": "calculator", "payload": {"expression": "299792458 * 60"}},
        ]
    }

    def model(request: ModelRequest) -> Reply:
        if request.response_schema is not None:
            enum = request.response_schema["properties"]["subtasks"]["items"]["properties"]
            assert set(enum["capability"]["enum"]) == {"calculator", "lookup"}
            return Reply.say(json.dumps(plan))
        assert "subtask results" in request.last_user_text
        return Reply.say("About 18 billion meters.")

    world.server.respond_with(model)
    offers = Collector()  # what the task recorder sees of the subtasks
    await world.mesh.transport.subscribe(subjects.task_offers(world.tenant), offers)
    task_id = await world.mesh.submit("plan", {"goal": "How far does light go in a minute?"})
    out = await world.mesh.wait_result(task_id, timeout=30)
    assert out["text"] == "About 18 billion meters."
    subtasks = [e for e in offers.envelopes if e.id != task_id]
    assert len(subtasks) == 2  # the task tree: each subtask names the plan as its parent
    assert {e.metadata.get("parent_task_id") for e in subtasks} == {task_id}
    assert out["plan"] == plan["subtasks"]
    assert out["results"] == [{"fact": "299792458 m/s"}, {"value": 17987547480.0}]
    assert [s["status"] for s in out["subtasks"]] == ["completed", "completed"]
    assert world.calls == {"calculator": 1, "lookup": 1}
    assert len(world.server.requests) == 2


async def test_durable_tools_run_as_tasks_and_metrics_count(world: World) -> None:
    from agentmesh.observability.metrics import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    world.calculator()
    world.llm(durable_tools=["calculator"])
    await world.start(2)
    seen: list[Envelope] = []

    async def on_done(env: Envelope) -> None:
        seen.append(env)

    await world.mesh.on_event("task.completed", on_done)
    ok_before = sample(
        "agentmesh_llm_requests_total", provider="openai", model="gpt-4o-mini", outcome="ok"
    )
    world.server.script(Reply.call("calculator", {"expression": "2*3"}))
    world.server.respond_with(answer_with_tool_result)
    out = await world.mesh.run("research", {"prompt": "2*3?"}, timeout=20)
    assert out["tool_calls"][0]["result"] == {"value": 6.0}
    # the tool call was a durable task of its own (a task.completed event with its result)
    await eventually(lambda: any(e.payload.get("result") == {"value": 6.0} for e in seen), 5)
    ok = sample(
        "agentmesh_llm_requests_total", provider="openai", model="gpt-4o-mini", outcome="ok"
    )
    assert ok - ok_before == 2
    assert sample("agentmesh_llm_tokens_total", provider="openai", model="gpt-4o-mini",
                  direction="input") > 0  # fmt: skip


async def test_llm_agents_calling_each_other_stop_at_max_depth(world: World) -> None:
    from agentmesh.agents.llm import MAX_DEPTH

    world.llm(agent_id="ping-1", capabilities=["ping"], max_tool_rounds=1)
    world.llm(agent_id="pong-1", capabilities=["pong"], max_tool_rounds=1)
    await world.start(2)

    def model(request: ModelRequest) -> Reply:
        if request.tool_results:
            return Reply.say("done: " + json.dumps(request.tool_results[-1][1])[:200])
        other = "pong" if "pong" in request.tools else "ping"
        return Reply.call(other, {"prompt": "again", "llm_call_depth": 0})  # it tries to reset

    world.server.respond_with(model)
    out = await world.mesh.run("ping", {"prompt": "start"}, timeout=30)
    assert "called each other" in json.dumps(out)  # the innermost call failed, bounded
    # per level one model call on the way in and one on the way out
    assert len(world.server.requests) == 2 * (MAX_DEPTH + 1)


async def test_model_and_tool_calls_are_spans_of_the_task_trace(world: World) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentmesh.observability import tracing

    spans = InMemorySpanExporter()
    assert tracing.configure_tracing("llm-test", exporter=spans, batch=False)
    try:
        world.calculator()
        world.llm(kind="openai")
        await world.start(2)
        world.server.script(Reply.call("calculator", {"expression": "6*7"}))
        world.server.respond_with(answer_with_tool_result)
        out = await world.mesh.run("research", {"prompt": "What is 6*7?"}, timeout=20)
    finally:
        tracing.reset_tracing()
    assert out["tool_calls"][0]["status"] == "ok"
    got = spans.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for s in got:
        by_name.setdefault(s.name, []).append(s)
    [submit] = by_name["task.submit"]
    handlers = {s.context.span_id: s for s in by_name["task.handler"]}
    calls = by_name["llm.call"]
    assert len(calls) == 2  # the tool call round, then the answer
    for call in calls:
        assert call.context.trace_id == submit.context.trace_id  # one trace per task
        assert call.parent.span_id in handlers
        assert call.attributes["gen_ai.system"] == "openai"
        assert call.attributes["gen_ai.usage.input_tokens"] > 0
    assert [c.attributes["agentmesh.llm.tool_calls"] for c in calls] == [1, 0]
    [tool] = by_name["tool.call"]
    assert tool.parent.span_id in handlers
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert tool.attributes["agentmesh.tool.status"] == "ok"
    assert calls[0].end_time <= tool.start_time <= tool.end_time <= calls[1].start_time
    # the model call latency histogram links to the trace (OpenMetrics exemplar)
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    from agentmesh.observability.metrics import exposition

    body, _ = exposition("application/openmetrics-text")
    linked = {
        s.exemplar.labels["trace_id"]
        for fam in text_string_to_metric_families(body.decode())
        if fam.name == "agentmesh_llm_request_seconds"
        for s in fam.samples
        if s.exemplar is not None
    }
    assert f"{submit.context.trace_id:032x}" in linked
