"""A2A against a real `agentmesh up`, driven by the `a2a-sdk` client (not our code): it
fetches an agent's card, sends a message, streams a task to completion and cancels
another."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.card_resolver import A2ACardResolver
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)
from google.protobuf import json_format, struct_pb2

from agentmesh.runtime.embedded import free_port
from tests.e2e.interop.conftest import AGENTMESH, Up
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


def _message(data: dict[str, Any], **meta: str) -> Message:
    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    return Message(
        role=Role.ROLE_USER,
        message_id=str(uuid.uuid4()),
        parts=[Part(data=value)],
        metadata=meta or None,
    )


def _http(up: Up) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {up.token}"}, timeout=60)


def _result(task: Any) -> Any:
    for artifact in task.artifacts:
        for part in artifact.parts:
            if part.HasField("data"):
                return json_format.MessageToDict(part.data)
    return None


async def test_card_message_stream_and_cancel(up: Up) -> None:
    url = f"{up.base}/a2a/{up.tenant}/calculator-1"
    async with httpx.AsyncClient(timeout=10) as plain:
        card = await A2ACardResolver(plain, url).get_agent_card()
        unauthorized = await plain.post(url + "/", json={"jsonrpc": "2.0", "id": 1})
        missing = await plain.get(f"{up.base}/a2a/{up.tenant}/nobody-1/.well-known/agent-card.json")
    assert card.name == "calculator-1"
    assert [s.id for s in card.skills] == ["calculator"]
    assert "expression" in card.skills[0].description
    scheme = card.security_schemes["agentmeshJwt"].http_auth_security_scheme
    assert (scheme.scheme, scheme.bearer_format) == ("bearer", "JWT")
    assert unauthorized.status_code == 401
    assert missing.status_code == 404

    # send a message (no streaming): the final task carries the result
    async with _http(up) as http:
        await _send_and_stream(up, url, http)


async def _send_and_stream(up: Up, url: str, http: httpx.AsyncClient) -> None:
    client = await create_client(
        url, client_config=ClientConfig(httpx_client=http, streaming=False)
    )
    final = None
    async for event in client.send_message(
        SendMessageRequest(message=_message({"expression": "6 * 7"}))
    ):
        if event.HasField("task"):
            final = event.task
    assert final is not None
    assert final.status.state == TaskState.TASK_STATE_COMPLETED
    assert _result(final) == {"value": 42.0}
    fetched = await client.get_task(GetTaskRequest(id=final.id))
    assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
    # the A2A task is a mesh task the control plane recorded
    doc = up.task_in(final.id, {"completed"}, 20, "the A2A task recorded as completed")
    assert doc["agent_id"] == "calculator-1"

    # stream a task to completion
    streaming = await create_client(
        url, client_config=ClientConfig(httpx_client=http, streaming=True)
    )
    states: list[int] = []
    artifacts: list[Any] = []
    async for event in streaming.send_message(
        SendMessageRequest(message=_message({"expression": "2 * 21"}))
    ):
        if event.HasField("status_update"):
            states.append(event.status_update.status.state)
        elif event.HasField("artifact_update"):
            artifacts.append(
                json_format.MessageToDict(event.artifact_update.artifact.parts[0].data)
            )
        elif event.HasField("task"):
            states.append(event.task.status.state)
    assert TaskState.TASK_STATE_WORKING in states
    assert states[-1] == TaskState.TASK_STATE_COMPLETED
    assert artifacts == [{"value": 42.0}]


async def test_cancel_a_running_task(up: Up) -> None:
    up.spawn(
        AGENTMESH, "agent", "start", "slow-1", "-c", "slow", "--handler",
        "tests.e2e.interop.handlers:stuck",
    )  # fmt: skip
    await asyncio.to_thread(wait_until, lambda: up.listed("slow-1"), 40, "the slow agent")
    url = f"{up.base}/a2a/{up.tenant}/slow-1"
    async with _http(up) as http:
        await _start_and_cancel(up, url, http)


async def _start_and_cancel(up: Up, url: str, http: httpx.AsyncClient) -> None:
    client = await create_client(url, client_config=ClientConfig(httpx_client=http, streaming=True))
    task_id = None
    stream = client.send_message(SendMessageRequest(message=_message({"n": 1})))
    async for event in stream:
        if event.HasField("task"):
            task_id = event.task.id
        elif event.HasField("status_update"):
            task_id = event.status_update.task_id
        if task_id:
            break
    await stream.aclose()
    assert task_id is not None
    with up.client() as rest:  # the mesh task runs on the agent before it is cancelled
        await asyncio.to_thread(
            wait_until,
            lambda: (
                rest.get(f"/v1/tenants/{up.tenant}/tasks/{task_id}").json().get("status")
                in ("assigned", "running")
            ),
            20,
            "the task running",
        )
    cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    doc = await asyncio.to_thread(up.task_in, task_id, {"cancelled"}, 20, "the mesh task cancelled")
    assert doc["agent_id"] == "slow-1"


def test_a_remote_a2a_agent_joins_the_mesh(up: Up) -> None:
    port = free_port()
    up.spawn(sys.executable, "tests/e2e/interop/a2a_remote.py", str(port))
    remote = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(remote + "/.well-known/agent-card.json", timeout=2).status_code == 200,
        40,
        "the remote A2A agent",
    )
    up.spawn(AGENTMESH, "agent", "start-a2a-proxy", "shouter-1", "--url", remote)
    wait_until(lambda: up.listed("shouter-1"), 40, "the proxy agent: " + up.logs())
    with up.client() as rest:
        live = rest.get(f"/v1/tenants/{up.tenant}/agents/live").json()["agents"]
        (proxy,) = [a for a in live if a["agent_id"] == "shouter-1"]
        assert set(proxy["capabilities"]) == {"shout"}
    task_id = up.submit("shout", {"word": "mesh"})
    doc = up.task_in(task_id, {"completed", "failed"}, 30, "the proxied task")
    assert doc["status"] == "completed", doc
    assert doc["result"] == {"shout": "MESH", "by": "remote"}


def test_proxy_of_an_unreachable_url_is_one_line() -> None:
    import subprocess

    out = subprocess.run(
        [
            AGENTMESH,
            "agent",
            "start-a2a-proxy",
            "gone-1",
            "--url",
            f"http://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "cannot fetch the agent card" in out.stderr
    assert "Traceback" not in out.stderr
