"""The per-tenant approval webhook of a running control plane: a receiver on 127.0.0.1
(allowed only with ``allow_private``) gets each approval event signed with the tenant's
HMAC key; the same loopback URL without ``allow_private`` is refused (SSRF guard)."""

from __future__ import annotations

import asyncio
import hmac
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from agentmesh import Mesh
from agentmesh.commands import CreateTenant, SubmitTask
from agentmesh.commands.approvals import DecideApproval
from agentmesh.commands.safety import SetSafetyPolicy
from agentmesh.controlplane import ControlPlane
from agentmesh.runtime.approval_webhook import sign, webhook_key
from tests.helpers import eventually, fast_settings

pytestmark = pytest.mark.integration


class Receiver:
    """A minimal HTTP/1.1 server on a free 127.0.0.1 port that keeps what it is sent."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.got.append((headers, body))
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_webhook_is_signed_and_loopback_needs_allow_private(tmp_path: Path) -> None:
    tenant = "t" + uuid.uuid4().hex[:8]
    settings = fast_settings(tmp_path, database_url="memory://", agentmesh_safety=False)
    mesh = Mesh(f"memory://{uuid.uuid4().hex}", tenant=tenant, settings=settings)
    receiver = Receiver()
    await receiver.start()
    plane = ControlPlane(settings, mesh, projection_interval=0.05)
    await mesh.start()
    await plane.start()
    assert plane.approvals is not None
    hook = plane.approvals.webhook
    assert hook is not None
    url = f"http://127.0.0.1:{receiver.port}/hook"
    try:
        bus = plane.bus
        await bus.execute(CreateTenant("Hooks " + tenant, tenant_id=tenant))
        policy: dict[str, Any] = {
            "version": 2,
            "approvals": {"rules": [], "webhook": {"url": url, "allow_private": True}},
        }
        await bus.execute(SetSafetyPolicy(tenant, policy, "admin"))
        await bus.execute(
            SubmitTask(tenant, "deploy", {"env": "prod"}, task_id="d1", requires_approval=True)
        )
        await eventually(lambda: len(receiver.got) >= 1, timeout=15, what="the request hook")
        await bus.execute(DecideApproval(tenant, "d1__a1", "approved", "alice", comment="go"))
        await eventually(lambda: len(receiver.got) >= 2, timeout=15, what="the decision hook")
        key = webhook_key(str(plane.settings.jwt_secret_key), tenant)
        events = []
        for headers, body in receiver.got:
            expected = sign(key, headers["x-agentmesh-timestamp"], body)
            assert hmac.compare_digest(headers["x-agentmesh-signature"], expected)
            doc = orjson.loads(body)
            assert doc["tenant_id"] == tenant
            events.append((headers["x-agentmesh-event"], doc["data"].get("decided_by")))
        assert events == [("task.approval_requested", None), ("task.approval_decided", "alice")]
        assert sign(webhook_key("another-secret", tenant), "1", b"x") != sign(key, "1", b"x")

        policy = {"version": 3, "approvals": {"webhook": {"url": url}}}
        await bus.execute(SetSafetyPolicy(tenant, policy, "admin"))
        await bus.execute(
            SubmitTask(tenant, "deploy", {"env": "dev"}, task_id="d2", requires_approval=True)
        )
        await eventually(lambda: hook.refused >= 1, timeout=15, what="the loopback URL refused")
        assert len(receiver.got) == 2
        assert hook.sent == 2
    finally:
        await plane.stop()
        await mesh.stop()
        await receiver.stop()
