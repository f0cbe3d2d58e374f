"""LLM agents vs the direct SDK call, on one local model server (its own process).

* ``llm_agent_call_p50``: ``mesh.run`` (durable submit -> result) of a one-call LLM task on
  an embedded NATS, against the direct ``openai`` SDK call to the same server; the
  overhead is the difference of the medians (target <= 2 ms).
* ``llm_agent_request_p50``: the same through ``mesh.request`` (core request/reply).
* ``llm_tool_call_overhead_p50``: per tool call, the time the LLM agent spends beyond the
  tool agent's own handler time (schema check, mesh request, audit event), against a raw
  ``mesh.request`` of the same tool (target <= 1 ms).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agentmesh import Mesh, TaskContext
from agentmesh.agents.llm import LLMAgentConfig, llm_agent
from agentmesh.config import Settings
from agentmesh.llm import ChatMessage, ResilientProvider
from agentmesh.llm.openai_compat import openai_provider
from agentmesh.runtime.embedded import EmbeddedNats, free_port
from bench.core import entry

N = 100
WARMUP = 20
ROUNDS = 3
SPEC = {"description": "adds one", "input_schema": {"type": "object"}}


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


CPU: dict[str, list[float]] = {}


async def interleaved(
    paths: dict[str, Any], rounds: list[dict[str, float]]
) -> dict[str, list[float]]:
    """Each path once per step, N steps after WARMUP, ROUNDS times: load drift hits every
    path alike. Appends each round's p50 per path to ``rounds``; returns every sample.
    The CPU time of this process per call goes to ``CPU`` (what the path costs whatever
    the machine's load)."""
    out: dict[str, list[float]] = {name: [] for name in paths}
    for r in range(ROUNDS):
        mine: dict[str, list[float]] = {name: [] for name in paths}
        for i in range(WARMUP + N if r == 0 else N):
            for name, call in paths.items():
                c, t = time.process_time(), time.perf_counter()
                await call()
                if r > 0 or i >= WARMUP:
                    mine[name].append(time.perf_counter() - t)
                    CPU.setdefault(name, []).append(time.process_time() - c)
        rounds.append({name: p50(v) for name, v in mine.items()})
        for name, v in mine.items():
            out[name] += v
    return out


MODEL_TIMES: list[float] = []


class PlainTimer:
    """The provider of the plain agent, timing each model call (the handler's wait)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.model = inner, inner.name, inner.model

    async def complete(self, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        out = await self.inner.complete(*a, **kw)
        MODEL_TIMES.append(time.perf_counter() - t)
        return out

    def stream(self, *a: Any, **kw: Any) -> Any:
        return self.inner.stream(*a, **kw)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def measure(nats_url: str, model_url: str, tmp: Path) -> dict[str, dict[str, Any]]:
    tenant = "bl" + uuid.uuid4().hex[:6]
    settings = Settings(agentmesh_data_dir=tmp)  # type: ignore[call-arg]
    mesh = Mesh(nats_url, tenant=tenant, settings=settings)
    own: list[float] = []

    @mesh.agent("inc-1", capabilities=["inc"], capability_specs={"inc": SPEC})
    async def inc(task: TaskContext) -> dict[str, Any]:
        t = time.perf_counter()
        out = {"n": int(task.payload.get("n", 0)) + 1}
        own.append(time.perf_counter() - t)
        return out

    @mesh.agent("noop-1", capabilities=["noop"])
    async def noop(task: TaskContext) -> dict[str, Any]:
        return {"text": "ok"}

    direct = openai_provider("bench", api_key="bench", base_url=model_url)
    agent_provider = ResilientProvider(
        openai_provider("bench", api_key="bench", base_url=model_url)
    )
    cfg = LLMAgentConfig(stream=False, tools=["inc"])
    llm_agent(mesh, "chat-1", agent_provider, capabilities=["chat"], config=cfg)
    plain = llm_agent(mesh, "plain-1", PlainTimer(agent_provider), capabilities=["plain"],
                      config=LLMAgentConfig(stream=False, tools=[]))  # fmt: skip
    handler, handler_times = plain.handler, []

    async def timed_handler(task: TaskContext) -> Any:
        t = time.perf_counter()
        out = await handler(task)
        handler_times.append(time.perf_counter() - t)
        return out

    plain.handler = timed_handler
    raw = direct._client  # the SDK itself, no agentmesh code in the path

    async def sdk() -> None:
        await raw.chat.completions.create(
            model="bench", messages=[{"role": "user", "content": "hello there"}]
        )

    overheads: list[float] = []

    async def with_tool() -> None:
        own.clear()
        out = await mesh.request("chat", {"prompt": "use inc"}, timeout=10)
        [call] = out["tool_calls"]
        overheads.append(call["ms"] / 1000 - own[-1])

    paths = {
        "sdk": sdk,
        "provider": lambda: agent_provider.complete([ChatMessage.user("hello there")]),
        "run": lambda: mesh.run("plain", {"prompt": "hello there"}),
        "request": lambda: mesh.request("plain", {"prompt": "hello there"}),
        "noop_run": lambda: mesh.run("noop", {"prompt": "hello there"}),
        "noop_request": lambda: mesh.request("noop", {"prompt": "hello there"}),
        "raw_tool": lambda: mesh.request("inc", {"n": 1}),
        "tool": with_tool,
    }
    rounds: list[dict[str, float]] = []
    async with mesh:
        await asyncio.sleep(0.5)  # heartbeats: the chat agent knows its tool
        t = await interleaved(paths, rounds)
        del overheads[:WARMUP]
    # the LLM agent's own code per call: its handler's time minus the model call it made
    code = [h - m for h, m in zip(handler_times, MODEL_TIMES, strict=True)][2 * WARMUP :]
    await direct.aclose()
    await agent_provider.aclose()
    sdk_p50 = p50(t["sdk"])
    per_round = [r["run"] - r["sdk"] for r in rounds]
    cpu = {name: statistics.median(v) * 1000 for name, v in CPU.items()}
    return {
        "llm_agent_call_overhead_p50_rounds": {
            **entry(statistics.median(per_round), "ms (median of rounds, target <= 2)", None),
            "rounds": [round(x, 3) for x in per_round],
        },
        "llm_agent_call_cpu_overhead": entry(
            cpu["run"] - cpu["sdk"], "ms CPU per call beyond the SDK call's", None
        ),
        "llm_direct_sdk_call_cpu": entry(cpu["sdk"], "ms CPU per call", None),
        "llm_direct_sdk_call_p50": entry(sdk_p50, "ms", None),
        "llm_agent_call_p50": entry(p50(t["run"]), "ms", sdk_p50, higher_is_better=False),
        "llm_agent_call_overhead_p50": entry(p50(t["run"]) - sdk_p50, "ms (target <= 2)", None),
        "llm_agent_own_overhead_p50": entry(
            p50(t["run"]) - sdk_p50 - p50(t["noop_run"]), "ms (beyond a no-op agent's path)", None
        ),
        "llm_provider_call_p50": entry(
            p50(t["provider"]), "ms (our provider, direct)", sdk_p50, higher_is_better=False
        ),
        "llm_model_call_in_agent_p50": entry(
            p50(MODEL_TIMES[2 * WARMUP :]), "ms", sdk_p50, higher_is_better=False
        ),
        "llm_agent_code_p50": entry(p50(code), "ms (handler minus model call)", None),
        "llm_noop_agent_run_p50": entry(p50(t["noop_run"]), "ms", None),
        "llm_noop_agent_request_p50": entry(p50(t["noop_request"]), "ms", None),
        "llm_agent_request_p50": entry(p50(t["request"]), "ms", sdk_p50, higher_is_better=False),
        "llm_agent_request_overhead_p50": entry(p50(t["request"]) - sdk_p50, "ms", None),
        "llm_tool_call_overhead_p50": entry(
            p50(overheads), "ms (target <= 1)", p50(t["raw_tool"]), higher_is_better=False
        ),
    }


async def run() -> dict[str, dict[str, Any]]:
    port = free_port()
    model = subprocess.Popen(  # noqa: ASYNC220 (started once, before any measurement)
        [sys.executable, "-m", "agentmesh.testing", "--port", str(port),
         "--call", "inc", "--args", '{"n": 41}'],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert model.stdout is not None
        model.stdout.readline()  # the URL: it is serving
        with tempfile.TemporaryDirectory() as d:
            server = EmbeddedNats(Path(d) / "nats", port=None)
            url = server.start()
            try:
                return await measure(url, f"http://127.0.0.1:{port}/v1", Path(d))
            finally:
                server.stop()
    finally:
        model.terminate()
        model.wait(10)


if __name__ == "__main__":
    for k, v in asyncio.run(run()).items():
        print(k, v)
