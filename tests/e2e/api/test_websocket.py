"""WebSocket /ws against a real server: auth, isolation, limits, keep-alive."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.api.conftest import LiveServer
from tests.helpers import until

pytestmark = pytest.mark.e2e


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert isinstance(msg, dict)
    return msg


async def recv_type(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of ``kind``, answering pings on the way."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await recv(ws, timeout)
            if msg["type"] == "ping":
                await ws.send(
                    json.dumps({"type": "pong", "data": {"message_id": msg["message_id"]}})
                )
                continue
            if msg["type"] == kind:
                return msg


async def drain(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Everything but pings received in ``seconds`` (pings are answered)."""
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            msg = await recv(ws, left)
        except TimeoutError:
            break
        if msg["type"] == "ping":
            await ws.send(json.dumps({"type": "pong", "data": {"message_id": msg["message_id"]}}))
        else:
            out.append(msg)
    return out


async def open_client(
    live: LiveServer, tenant: str, *roles: str, sub: str = "tester"
) -> ClientConnection:
    ws = await connect(f"{live.ws_url}?token={live.token(tenant, *roles, sub=sub)}")
    hello = await recv(ws)
    assert hello["type"] == "connect"
    assert hello["data"]["status"] == "connected"
    auth = await recv(ws)
    assert auth["type"] == "auth_response"
    assert auth["data"] == {"status": "authenticated", "user_id": sub, "tenant_id": tenant}
    return ws


async def subscribe(ws: ClientConnection, channel: str, **extra: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "SUBSCRIBE", "data": {"channel": channel, **extra}}))
    return await recv_type(ws, "notification")


async def closed_without_data(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as info:
        await recv(ws)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def close_code(ws: ClientConnection, timeout: float = 5.0) -> int:
    """Read (ignoring data) until the server closes; its close code."""
    async with asyncio.timeout(timeout):
        for _ in range(1000):
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd is not None else -1
    raise AssertionError("the server did not close the connection")


async def test_no_token_or_bad_token_closes_before_any_data(live: LiveServer) -> None:
    async with connect(f"{live.ws_url}?token=not-a-jwt") as ws:
        assert await closed_without_data(ws) == 1008
    expired = live.tokens.create(
        "x", "acme", ["admin"], expires_in=__import__("datetime").timedelta(seconds=-120)
    )
    async with connect(f"{live.ws_url}?token={expired}") as ws:
        assert await closed_without_data(ws) == 1008
    async with connect(live.ws_url) as ws:  # no token: the first message must be auth
        await ws.send(json.dumps({"type": "subscribe", "data": {"channel": "agents"}}))
        assert await closed_without_data(ws) == 1008
    async with connect(live.ws_url) as ws:  # silence until the auth timeout
        assert await closed_without_data(ws) == 1008


async def test_auth_message_in_any_case(live: LiveServer) -> None:
    async with connect(live.ws_url) as ws:
        await ws.send(
            json.dumps({"type": "AUTH", "data": {"token": live.token("acme", "observer")}})
        )
        assert (await recv(ws))["type"] == "connect"
        auth = await recv(ws)
        assert auth["data"]["tenant_id"] == "acme"
        ack = await subscribe(ws, "agents")
        assert ack["data"] == {"action": "subscribed", "channel": "agents", "tenant_id": "acme"}


async def test_origin_outside_the_allow_list_is_refused(live: LiveServer) -> None:
    token = live.token("acme", "observer")
    with pytest.raises(InvalidStatus):
        await connect(f"{live.ws_url}?token={token}", origin="https://evil.example")  # type: ignore[arg-type]
    ws = await connect(f"{live.ws_url}?token={token}", origin="http://localhost:3000")  # type: ignore[arg-type]
    assert (await recv(ws))["type"] == "connect"
    await ws.close()


async def test_tenant_a_never_sees_tenant_b(live: LiveServer) -> None:
    a = await open_client(live, "tenant-a", "observer", sub="alice")
    b = await open_client(live, "tenant-b", "observer", sub="bob")
    try:
        for ws in (a, b):
            await subscribe(ws, "agents")
            await subscribe(ws, "tasks")
        await a.send(
            json.dumps(
                {"type": "subscribe", "data": {"channel": "agents", "tenant_id": "tenant-b"}}
            )
        )
        denied = await recv_type(a, "error")
        assert denied["data"]["code"] == "TENANT_FORBIDDEN"
        async with httpx.AsyncClient(base_url=live.url) as http:
            body = {"agent_id": "b-agent", "name": "B's agent", "capabilities": [{"name": "x"}]}
            r = await http.post(
                "/v1/tenants/tenant-b/agents", json=body, headers=live.auth("tenant-b")
            )
            assert r.status_code == 201
            r = await http.post(
                "/v1/tenants/tenant-b/tasks",
                json={"capability": "x"},
                headers=live.auth("tenant-b"),
            )
            assert r.status_code == 201
            b_task = r.json()["task_id"]
            update = await recv_type(b, "agent_status_update")
            assert update["data"]["agent_id"] == "b-agent"
            assert update["data"]["status"] == "AVAILABLE"
            task_update = await recv_type(b, "task_update")
            assert task_update["data"]["task_id"] == b_task
            body = {"agent_id": "a-agent", "name": "A's agent", "capabilities": [{"name": "x"}]}
            r = await http.post(
                "/v1/tenants/tenant-a/agents", json=body, headers=live.auth("tenant-a")
            )
            assert r.status_code == 201
        got_a = await drain(a, 1.0)
        assert [m["data"]["agent_id"] for m in got_a if m["type"] == "agent_status_update"] == [
            "a-agent"
        ]
        assert "b-agent" not in json.dumps(got_a)
        assert b_task not in json.dumps(got_a)
    finally:
        await a.close()
        await b.close()


async def test_sixth_connection_of_a_user_is_closed_4001(live: LiveServer) -> None:
    clients = [await open_client(live, "acme", "observer", sub="carol") for _ in range(5)]
    try:
        async with connect(
            f"{live.ws_url}?token={live.token('acme', 'observer', sub='carol')}"
        ) as sixth:
            assert await closed_without_data(sixth) == 4001
        other = await open_client(live, "acme", "observer", sub="dave")  # another user is fine
        await other.close()
    finally:
        for ws in clients:
            await ws.close()
    # slots are released once the server has seen the closes: a 6th try is refused until then
    again = await until(
        lambda: open_client(live, "acme", "observer", sub="carol"),
        10,
        "carol's connection slots released",
        not_yet=(ConnectionClosed,),
    )
    await again.close()


async def test_missing_pong_closes_and_answered_pings_keep_it_open(live: LiveServer) -> None:
    silent = await open_client(live, "acme", "observer", sub="silent")
    polite = await open_client(live, "acme", "observer", sub="polite")
    try:
        # the polite client answers every ping for 2.5 s (> 3 ping intervals) meanwhile
        polite_pings = asyncio.create_task(drain(polite, 2.5))
        ping = await recv(silent, 2)
        assert ping["type"] == "ping"
        assert await close_code(silent) == 1011
        await polite_pings
        await polite.send(json.dumps({"type": "ping", "message_id": "m1"}))
        pong = await recv_type(polite, "pong")
        assert pong["data"]["message_id"] == "m1"
    finally:
        await silent.close()
        await polite.close()


async def test_invalid_messages_and_permissions(live: LiveServer) -> None:
    ws = await open_client(live, "acme", "agent", sub="agent-1")
    try:
        await ws.send(json.dumps({"type": "subscribe", "data": {"channel": "metrics"}}))
        err = await recv_type(ws, "error")
        assert err["data"]["code"] == "FORBIDDEN"
        await ws.send(json.dumps({"type": "subscribe", "data": {"channel": "nope"}}))
        assert (await recv_type(ws, "error"))["data"]["code"] == "INVALID_CHANNEL"
        await ws.send(json.dumps({"type": "teleport"}))
        assert (await recv_type(ws, "error"))["data"]["code"] == "UNKNOWN_TYPE"
        await ws.send("{not json")
        assert await close_code(ws) == 4000
    finally:
        await ws.close()


async def test_metrics_updates_and_unsubscribe(live: LiveServer) -> None:
    ws = await open_client(live, "acme", "observer", sub="watcher")
    try:
        await subscribe(ws, "metrics")
        update = await recv_type(ws, "metrics_update", timeout=3)
        assert update["data"]["tenant_id"] == "acme"
        assert "agent_count" in update["data"]
        await ws.send(json.dumps({"type": "unsubscribe", "data": {"channel": "metrics"}}))
        await recv_type(ws, "notification")
        later = await drain(ws, 0.8)
        assert [m for m in later if m["type"] == "metrics_update"] == []
    finally:
        await ws.close()


async def test_ws_attempts_are_audited(live: LiveServer) -> None:
    async with connect(f"{live.ws_url}?token=bad") as ws:
        await closed_without_data(ws)
    ws = await open_client(live, "tenant-b", "admin", sub="eve")
    await ws.send(
        json.dumps({"type": "subscribe", "data": {"channel": "tasks", "tenant_id": "tenant-a"}})
    )
    await recv_type(ws, "error")
    await ws.close()
    async with httpx.AsyncClient(base_url=live.url) as http:
        r = await http.get(
            "/v1/tenants/tenant-a/audit",
            params={"action": "unauthorized_access"},
            headers=live.auth("tenant-a", "admin"),
        )
    entries = r.json()["entries"]
    assert [e["actor"] for e in entries] == ["eve"]
    assert entries[0]["details"]["operation"] == "ws:tasks"
