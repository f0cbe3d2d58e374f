"""Tenant isolation on NATS, checked with the raw nats-py client (not our transport).

A nats-server with the auth callout (the embedded server's configuration) and the
callout service on a free port; tokens minted by the same TokenService as ``agentmesh
token create``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import StreamConfig
from nats.js.kv import KeyValue

from agentmesh.security.bus_auth import BusAuthConfig
from agentmesh.security.bus_permissions import inbox_prefix
from agentmesh.security.nats_callout import NatsCalloutService
from agentmesh.security.tokens import TokenConfig, TokenService
from tests.helpers import eventually
from tests.integration.bus_tenancy.conftest import Client

pytestmark = pytest.mark.integration


async def _collect(nc: Any, subject: str) -> list[str]:
    got: list[str] = []

    async def on_msg(msg: Any) -> None:
        got.append(msg.subject)

    await nc.subscribe(subject, cb=on_msg)
    await nc.flush()
    return got


async def test_tenant_a_credentials_are_confined_to_tenant_a(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
) -> None:
    url, _ = auth_server
    a, b = tenants
    agent_a = await Client().connect(url, tokens.create("agent-a", a, ["agent"]), a)
    agent_b = await Client().connect(url, tokens.create("agent-b", b, ["agent"]), b)
    try:
        seen_by_b = await _collect(agent_b.nc, f"am.{b}.>")
        seen_by_a = await _collect(agent_a.nc, f"am.{a}.>")
        await agent_a.nc.subscribe(f"am.{b}.>")
        await agent_a.nc.publish(f"am.{b}.task.x", b"intrusion")
        await agent_a.nc.publish(f"am.{a}.task.x", b"own work")
        await agent_b.nc.publish(f"am.{b}.task.y", b"b's secret")
        await agent_a.nc.flush()
        await agent_b.nc.flush()
        await eventually(lambda: agent_a.violation(f"am.{b}.task.x"), 5)
        await eventually(lambda: agent_a.violation(f"am.{b}.>"), 5)
        await eventually(lambda: f"am.{a}.task.x" in seen_by_a, 5)
        await eventually(lambda: f"am.{b}.task.y" in seen_by_b, 5)
        assert f"am.{b}.task.x" not in seen_by_b  # the intrusion never reached tenant b
        assert f"am.{b}.task.y" not in seen_by_a  # nor did b's traffic reach a
        # b's reply inboxes are b's: a cannot listen to them
        await agent_a.nc.subscribe(f"{inbox_prefix(b)}.>")
        await eventually(
            lambda: agent_a.violation(f"{inbox_prefix(b)}.>"), 5, what=str(agent_a.errors)
        )
    finally:
        await agent_a.nc.close()
        await agent_b.nc.close()


async def test_jetstream_and_key_values_are_scoped_to_the_tenant(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
) -> None:
    url, _ = auth_server
    a, b = tenants
    agent_a = await Client().connect(url, tokens.create("agent-a", a, ["agent"]), a)
    agent_b = await Client().connect(url, tokens.create("agent-b", b, ["agent"]), b)
    try:
        js_a, js_b = agent_a.nc.jetstream(timeout=2), agent_b.nc.jetstream(timeout=2)
        await js_a.add_stream(StreamConfig(name=f"AM_{a}_task", subjects=[f"am.{a}.task.>"]))
        await js_b.add_stream(StreamConfig(name=f"AM_{b}_task", subjects=[f"am.{b}.task.>"]))
        assert (await js_a.publish(f"am.{a}.task.x", b"1")).stream == f"AM_{a}_task"
        await js_b.publish(f"am.{b}.task.x", b"secret")
        with pytest.raises(nats.errors.TimeoutError):  # the request is dropped as a violation
            await js_a.stream_info(f"AM_{b}_task")
        with pytest.raises(nats.errors.TimeoutError):
            await js_a.pull_subscribe(f"am.{b}.task.x", durable="steal", stream=f"AM_{b}_task")
        assert agent_a.violation(f"AM_{b}_task")
        kv_b = await js_b.create_key_value(bucket="AM_TASKS", direct=True)
        await kv_b.put(f"{b}.t1.done", b"b's outcome")
        # bound without a stream-info request (a tenant may not read the bucket's info)
        kv_a = KeyValue(
            name="AM_TASKS", stream="KV_AM_TASKS", pre="$KV.AM_TASKS.", js=js_a, direct=True
        )
        await kv_a.put(f"{a}.t1.done", b"a's outcome")
        assert (await kv_a.get(f"{a}.t1.done")).value == b"a's outcome"
        with pytest.raises(nats.errors.TimeoutError):
            await kv_a.get(f"{b}.t1.done")
        with pytest.raises(nats.errors.TimeoutError):
            await kv_a.put(f"{b}.t1.done", b"forged outcome")
        assert (await kv_b.get(f"{b}.t1.done")).value == b"b's outcome"
    finally:
        await agent_a.nc.close()
        await agent_b.nc.close()


async def test_an_observer_reads_but_does_not_publish(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
) -> None:
    url, _ = auth_server
    a, _ = tenants
    observer = await Client().connect(url, tokens.create("watcher", a, ["observer"]), a)
    agent = await Client().connect(url, tokens.create("agent-a", a, ["agent"]), a)
    try:
        seen = await _collect(observer.nc, f"am.{a}.>")
        await agent.nc.publish(f"am.{a}.evt.task.completed.t1", b"done")
        await observer.nc.publish(f"am.{a}.task.x", b"not allowed")
        await observer.nc.flush()
        await eventually(lambda: f"am.{a}.evt.task.completed.t1" in seen, 5)
        await eventually(lambda: observer.violation(f"am.{a}.task.x"), 5)
    finally:
        await observer.nc.close()
        await agent.nc.close()


@pytest.mark.parametrize("case", ["none", "garbage", "expired", "forged", "no-roles"])
async def test_connections_without_a_valid_token_are_refused(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
    case: str,
) -> None:
    url, _ = auth_server
    a, _ = tenants
    forger = TokenService(TokenConfig(secret="f" * 32))
    token = {
        "none": None,
        "garbage": "not-a-token",
        "expired": tokens.create(
            "agent-a", a, ["agent"], now=datetime.now(UTC) - timedelta(days=2)
        ),
        "forged": forger.create("agent-a", a, ["agent"]),
        "no-roles": tokens.create("agent-a", a, []),
    }[case]
    if case == "no-roles":  # authenticated, but a token without a role may do nothing
        client = await Client().connect(url, token, a)
        try:
            await client.nc.publish(f"am.{a}.task.x", b"x")
            await client.nc.flush()
            await eventually(lambda: client.violation(f"am.{a}.task.x"), 5)
        finally:
            await client.nc.close()
        return
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await Client().connect(url, token, a)


async def test_revoked_token_and_deactivated_tenant_are_disconnected_at_once(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
) -> None:
    url, _ = auth_server
    a, b = tenants
    token_a = tokens.create("agent-a", a, ["agent"])
    agent_a = await Client().connect(url, token_a, a)
    agent_a2 = await Client().connect(url, tokens.create("agent-a2", a, ["agent"]), a)
    agent_b = await Client().connect(url, tokens.create("agent-b", b, ["agent"]), b)
    try:
        jti = tokens.verify(token_a).token_id
        assert jti is not None
        assert await callout.revoke_token(b, jti) == 0  # another tenant's admin: no effect
        assert agent_a.nc.is_connected
        assert await callout.revoke_token(a, jti) == 1
        await eventually(lambda: not agent_a.nc.is_connected, 5)
        assert agent_a2.nc.is_connected
        assert agent_b.nc.is_connected
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await Client().connect(url, token_a, a)
        assert await callout.deactivate_tenant(a) == 1
        await eventually(lambda: not agent_a2.nc.is_connected, 5)
        assert agent_b.nc.is_connected
        await agent_b.nc.publish(f"am.{b}.task.x", b"still working")
        await agent_b.nc.flush()
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await Client().connect(url, tokens.create("agent-a3", a, ["agent"]), a)
    finally:
        for c in (agent_a, agent_a2, agent_b):
            if not c.nc.is_closed:
                await c.nc.close()


async def test_the_server_disconnects_a_client_when_its_token_expires(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
) -> None:
    url, _ = auth_server
    a, _ = tenants
    short = tokens.create("agent-a", a, ["agent"], expires_in=timedelta(seconds=2))
    client = await Client().connect(url, short, a)
    try:
        assert client.nc.is_connected
        await eventually(lambda: not client.nc.is_connected, 8)
    finally:
        if not client.nc.is_closed:
            await client.nc.close()


def test_the_auth_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    config = BusAuthConfig.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert BusAuthConfig.load_or_create(path) == config
    assert config.auth_password not in repr(config)


async def test_callout_refusals_never_log_the_token(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
) -> None:
    from loguru import logger

    url, _ = auth_server
    a, _ = tenants
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG")
    try:
        forged = TokenService(TokenConfig(secret="f" * 32)).create("agent-a", a, ["agent"])
        with pytest.raises(nats.errors.Error):
            await Client().connect(url, forged, a)
        await eventually(lambda: any("refused" in line for line in lines), 5)
    finally:
        logger.remove(sink)
    assert not any(forged in line or forged.split(".")[2] in line for line in lines)
