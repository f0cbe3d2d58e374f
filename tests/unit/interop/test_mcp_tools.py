"""An LLM agent uses the tools of an MCP server built with the official SDK (stdio and
streamable HTTP), allow-listed per server, its results checked as untrusted input."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.agents.llm import LLMAgentConfig, llm_agent
from agentmesh.errors import ValidationError
from agentmesh.interop.mcp_client import MCPServerConfig
from agentmesh.llm import resilient_provider
from agentmesh.mesh import Mesh
from agentmesh.runtime.embedded import free_port
from agentmesh.testing import LocalModelServer, Reply, ready
from tests.helpers import fast_settings, unique_tenant, wait_until

SERVER = Path(__file__).parent / "mcp_demo_server.py"
ALLOWED = {"add", "leak", "contact"}


@pytest.fixture
async def model() -> AsyncIterator[LocalModelServer]:
    async with LocalModelServer() as server:
        yield server


async def _ask(
    tmp_path: Path, model: LocalModelServer, servers: list[MCPServerConfig], prompt: str
) -> dict[str, Any]:
    tenant = unique_tenant()
    settings = fast_settings(tmp_path, openai_api_key="offline")
    mesh = Mesh(f"memory://{tenant}", tenant=tenant, settings=settings)
    provider = resilient_provider("openai", settings, base_url=model.openai_url)
    runtime = llm_agent(
        mesh,
        "assistant-1",
        provider,
        capabilities=["assist"],
        config=LLMAgentConfig(mcp_servers=servers),
    )
    try:
        async with mesh:
            await ready(mesh)
            return await mesh.run("assist", {"prompt": prompt}, timeout=60)
    finally:
        await runtime.handler.aclose()
        await provider.aclose()


def _stdio() -> MCPServerConfig:
    return MCPServerConfig("demo", command=sys.executable, args=(str(SERVER),), tools=ALLOWED)


async def test_stdio_tool_is_offered_allow_listed_and_called(
    tmp_path: Path, model: LocalModelServer
) -> None:
    model.script(
        Reply.call("demo__add", {"a": 2, "b": 3}),
        Reply.call("demo__shell", {"command": "ls"}),
        Reply.say("2 + 3 = 5"),
    )
    out = await _ask(tmp_path, model, [_stdio()], "add 2 and 3")
    assert out["text"] == "2 + 3 = 5"
    offered = set(model.requests[0].tools)
    assert {"demo__add", "demo__leak", "demo__contact"} <= offered
    assert "demo__shell" not in offered  # on the server, but not on the allow-list
    calls = {c["name"]: c for c in out["tool_calls"]}
    assert "demo__add" in calls, out["tool_calls"]
    assert calls["demo__add"]["status"] == "ok"
    assert calls["demo__add"]["source"] == "mcp"
    assert calls["demo__add"]["result"] == {"result": 5}
    assert calls["demo__shell"]["status"] == "refused"
    results = dict(model.requests[-1].tool_results)
    assert results["demo__add"] == {"result": 5}


async def test_results_are_untrusted(tmp_path: Path, model: LocalModelServer) -> None:
    model.script(Reply.call("demo__leak", {}), Reply.call("demo__contact", {}), Reply.say("done"))
    out = await _ask(tmp_path, model, [_stdio()], "look around")
    calls = {c["name"]: c for c in out["tool_calls"]}
    assert calls["demo__leak"]["status"] == "blocked"
    results = dict(model.requests[-1].tool_results)
    assert "withheld" in results["demo__leak"]["error"]
    assert "DROP TABLE" not in str(results)  # the model never read it
    assert calls["demo__contact"]["status"] == "ok"
    assert "bob.builder@example.com" not in str(results["demo__contact"])


@pytest.fixture
def http_server() -> Iterator[str]:
    """The demo server on streamable HTTP; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_until(lambda: httpx.get(url, timeout=1).status_code < 500, 30, "the MCP server")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def test_streamable_http_server(
    tmp_path: Path, model: LocalModelServer, http_server: str
) -> None:
    model.script(Reply.call("web__add", {"a": 40, "b": 2}), Reply.say("42"))
    config = MCPServerConfig("web", url=http_server, tools={"add"})
    out = await _ask(tmp_path, model, [config], "add")
    assert out["tool_calls"][0]["result"] == {"result": 42}
    assert set(model.requests[0].tools) == {"web__add"}


async def test_an_unreachable_server_is_skipped(tmp_path: Path, model: LocalModelServer) -> None:
    config = MCPServerConfig("gone", command=sys.executable, args=("-c", "pass"), tools={"add"})
    model.script(Reply.say("no tools"))
    out = await _ask(tmp_path, model, [config], "hello")
    assert out["text"] == "no tools"
    assert model.requests[0].tools == {}


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        MCPServerConfig("x", tools={"a"})
    with pytest.raises(ValidationError, match="allow-list"):
        MCPServerConfig("x", command="y", tools=())
    with pytest.raises(ValidationError, match="name"):
        MCPServerConfig("a__b", command="y", tools={"a"})
    parsed = MCPServerConfig.from_dict({"name": "s", "url": "http://h/mcp", "tools": ["t"]})
    assert parsed.tools == frozenset({"t"})
    with pytest.raises(ValidationError):
        MCPServerConfig.from_dict({"name": "s", "url": "u", "tools": ["t"], "bogus": 1})


def test_cli_refuses_a_bad_mcp_config(tmp_path: Path) -> None:
    bad = tmp_path / "mcp.json"
    bad.write_text('[{"name": "s", "url": "http://127.0.0.1:1/mcp", "tools": "add"}]')
    agentmesh = str(Path(sys.executable).parent / "agentmesh")
    out = subprocess.run(
        [agentmesh, "agent", "start-llm-agent", "a-1", "-c", "x", "--mcp-config", str(bad)],
        env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "k", "AGENTMESH_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "JSON lists" in out.stderr
    assert "Traceback" not in out.stderr
