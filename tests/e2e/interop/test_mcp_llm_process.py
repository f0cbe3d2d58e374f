"""An LLM agent process (`start-llm-agent --mcp-config`) uses a tool of an MCP server built
with the SDK (stdio), against the local model server, for a REST task of `agentmesh up`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agentmesh.testing import LocalModelServer, ModelRequest, Reply
from tests.e2e.interop.conftest import AGENTMESH, ROOT, Up
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e
SERVER = ROOT / "tests" / "unit" / "interop" / "mcp_demo_server.py"


def model(request: ModelRequest) -> Reply:
    if not request.tool_results:
        if "demo__add" not in request.tools:
            return Reply.say(f"no MCP tool among {sorted(request.tools)}")
        return Reply.call("demo__add", {"a": 20, "b": 22})
    return Reply.say(f"The MCP tool answered {request.tool_results[-1][1]['result']}.")


def test_llm_agent_process_uses_an_mcp_tool(up: Up, tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    entry = {"name": "demo", "command": sys.executable, "args": [str(SERVER)], "tools": ["add"]}
    config.write_text(json.dumps([entry]))
    with LocalModelServer(responder=model).running() as server:
        up.spawn(
            AGENTMESH, "agent", "start-llm-agent", "mcp-user-1", "--capabilities", "mcp-assist",
            "--provider", "openai", "--base-url", server.openai_url, "--mcp-config", str(config),
            OPENAI_API_KEY="offline",
        )  # fmt: skip
        wait_until(lambda: up.listed("mcp-user-1"), 40, "the LLM agent: " + up.logs())
        task_id = up.submit("mcp-assist", {"prompt": "20 + 22?"})
        doc = up.task_in(task_id, {"completed", "failed"}, 60, "the LLM task: " + up.logs())
    assert doc["status"] == "completed", doc
    assert doc["result"]["text"] == "The MCP tool answered 42."
    (call,) = doc["result"]["tool_calls"]
    assert (call["name"], call["status"], call["source"]) == ("demo__add", "ok", "mcp")
