"""A research agent (an LLM) that uses a `calculator` agent and a `lookup` agent as tools.

python examples/llm_agents.py                         # offline: the local model server answers
python examples/llm_agents.py --provider openai       # a real model (OPENAI_API_KEY, --model)
python examples/llm_agents.py --part tools [--url U]  # only the two tool agents (a process)
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import operator
import os
from typing import Any

from agentmesh import Mesh, TaskContext, get_settings
from agentmesh.agents.llm import LLMAgentConfig, llm_agent
from agentmesh.llm import resilient_provider
from agentmesh.testing import LocalModelServer, ModelRequest, Reply

QUESTION = "How far does light travel in one minute, in meters?"
FACTS = {"speed of light": "299792458 m/s", "earth radius": "6371 km"}
OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
SPECS = {
    "calculator": {
        "description": "Evaluates arithmetic with + - * / on numbers, e.g. '2 * (3 + 4)'",
        "input_schema": {"type": "object", "properties": {"expression": {"type": "string"}},
                         "required": ["expression"]},
    },
    "lookup": {
        "description": "Looks up a physical fact by name, e.g. 'speed of light'",
        "input_schema": {"type": "object", "properties": {"term": {"type": "string"}},
                         "required": ["term"]},
    },
}  # fmt: skip


def evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        return float(OPS[type(node.op)](evaluate(node.left), evaluate(node.right)))
    raise ValueError("only numbers and + - * / are allowed")


async def calculator(task: TaskContext) -> dict[str, Any]:
    return {"value": evaluate(ast.parse(task.payload["expression"], mode="eval").body)}


async def lookup(task: TaskContext) -> dict[str, Any]:
    term = str(task.payload["term"]).lower()
    return {"term": term, "fact": FACTS.get(term, "unknown")}


def offline_model(request: ModelRequest) -> Reply:
    """What a model would do: look the speed up, compute, then answer."""
    done = dict(request.tool_results)
    if "lookup" not in done:
        return Reply.call("lookup", {"term": "speed of light"})
    if "calculator" not in done:
        speed = done["lookup"]["fact"].split()[0]
        return Reply.call("calculator", {"expression": f"{speed} * 60"})
    meters = done["calculator"]["value"]
    return Reply.say(f"Light travels {meters:,.0f} m in one minute ({done['lookup']['fact']}).")


def add_tools(mesh: Mesh, suffix: str = "1") -> None:
    for name, fn in (("calculator", calculator), ("lookup", lookup)):
        mesh.agent(f"{name}-{suffix}", capabilities=[name], capability_specs={name: SPECS[name]})(
            fn
        )


async def tools_heard(mesh: Mesh, timeout: float = 30) -> None:
    """Wait until the registry has heard both tool agents (their heartbeats)."""
    heard = asyncio.Event()

    def check(*_: Any) -> None:
        if all(mesh.registry.agents(mesh.tenant, capability=c) for c in SPECS):
            heard.set()

    mesh.registry.on_change(check)
    check()
    await asyncio.wait_for(heard.wait(), timeout)


async def main(url: str | None, part: str = "all", provider: str = "", model: str = "") -> Any:
    mesh = Mesh(url, tenant=os.environ.get("AGENTMESH_TENANT", "examples"))
    add_tools(mesh)
    if part == "tools":
        async with mesh:
            await asyncio.Event().wait()  # serve until stopped
    server = None if provider else await LocalModelServer(responder=offline_model).start()
    settings = get_settings(**({} if provider else {"openai_api_key": "offline"}))
    llm = resilient_provider(provider or "openai", settings, model=model or None,
                             base_url=server.openai_url if server else None)  # fmt: skip
    config = LLMAgentConfig(system_prompt="Use the tools; answer in one sentence.",
                            tools={"calculator", "lookup"})  # fmt: skip
    llm_agent(mesh, "researcher-1", llm, capabilities=["research"], config=config)
    try:
        async with mesh:
            await tools_heard(mesh)
            out = await mesh.run("research", {"prompt": QUESTION}, timeout=120)
    finally:
        await llm.aclose()
        if server is not None:
            await server.stop()
    print(out["text"])
    print(
        json.dumps([{k: c[k] for k in ("name", "arguments", "status")} for c in out["tool_calls"]])
    )
    return out


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--url", help="broker URL (default: memory://, or NATS for --part tools)")
    cli.add_argument("--part", choices=["all", "tools"], default="all")
    cli.add_argument("--provider", choices=["openai", "gemini", "vertex"], default="")
    cli.add_argument("--model", default="")
    args = cli.parse_args()
    url = args.url or (None if args.part == "tools" else "memory://llm")
    asyncio.run(main(url, args.part, args.provider, args.model))
