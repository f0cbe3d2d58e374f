"""`agentmesh mcp serve` against a real `agentmesh up`: the official `mcp` SDK client lists
and calls the tenant's capabilities over stdio and streamable HTTP; each call is a durable
task the control plane records, with progress notifications."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from agentmesh.runtime.embedded import free_port
from tests.e2e.interop.conftest import AGENTMESH, Up
from tests.helpers import wait_until
from tests.processes import stop_processes

pytestmark = pytest.mark.e2e


async def _exercise(client: Client, up: Up) -> None:
    listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert {"calculator", "lookup"} <= set(tools)
    assert tools["calculator"].input_schema["required"] == ["expression"]
    assert "arithmetic" in (tools["calculator"].description or "")
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total, message))

    result = await client.call_tool(
        "calculator", {"expression": "6 * 7"}, progress_callback=on_progress
    )
    assert not result.is_error, result.content
    assert result.structured_content == {"value": 42.0}
    assert json.loads(result.content[0].text) == {"value": 42.0}  # type: ignore[union-attr]
    task_id = (result.meta or {})["agentmesh/task_id"]
    messages = [m or "" for _, _, m in progress]
    assert any("submitted" in m for m in messages), progress
    assert any("completed" in m for m in messages), progress
    with up.client() as rest:  # the call was a durable task the control plane knows
        doc = wait_until(
            lambda: (
                d
                if (d := rest.get(f"/v1/tenants/{up.tenant}/tasks/{task_id}").json()).get("status")
                == "completed"
                else None
            ),
            20,
            "the task recorded as completed: "
            + rest.get(f"/v1/tenants/{up.tenant}/tasks/{task_id}").text,
        )
    assert doc["required_capabilities"] == ["calculator"]
    assert doc["result"] == {"value": 42.0}
    bad = await client.call_tool("calculator", {"nope": 1})
    assert bad.is_error
    assert "schema" in bad.content[0].text  # type: ignore[union-attr]
    missing = await client.call_tool("no-such-tool", {})
    assert missing.is_error


async def test_stdio(up: Up) -> None:
    params = StdioServerParameters(
        command=AGENTMESH, args=["mcp", "serve", "--tenant", up.tenant], env=up.env
    )
    async with Client(params, read_timeout_seconds=60) as client:
        await _exercise(client, up)


async def test_streamable_http_needs_a_token(up: Up) -> None:
    port = free_port()
    proc = up.spawn(AGENTMESH, "mcp", "serve", "--tenant", up.tenant, "--http", "--port", str(port))
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_until(lambda: httpx.post(url, timeout=2).status_code == 401, 40, "the MCP endpoint")
        async with httpx.AsyncClient(timeout=5) as raw:
            wrong = await raw.post(url, headers={"Authorization": "Bearer nope.nope.nope"})
        assert wrong.status_code == 401
        headers = {"Authorization": f"Bearer {up.token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            await _exercise(client, up)
    finally:
        stop_processes([proc])


def test_asyncapi_cli_sees_the_tenants_capabilities(up: Up) -> None:
    out = subprocess.run(
        [AGENTMESH, "asyncapi", "--tenant", up.tenant],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc: dict[str, Any] = json.loads(out.stdout)
    assert doc["channels"]["task_calculator"]["address"] == f"am.{up.tenant}.task.calculator"
    assert doc["components"]["schemas"]["calculator_input"]["required"] == ["expression"]
