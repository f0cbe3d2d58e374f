"""The ``approvals`` WebSocket channel against a real server: a gated task's request and
its decision are pushed live to the tenant's subscribers (and to no other tenant)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.api.conftest import LiveServer
from tests.e2e.api.test_websocket import drain, open_client, recv_type, subscribe

pytestmark = pytest.mark.e2e


async def test_approval_updates_are_pushed_live(live: LiveServer) -> None:
    root = live.auth("_system", "admin", sub="root")
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        for tenant in ("acme", "other"):
            r = await http.post(
                "/v1/tenants", json={"tenant_id": tenant, "name": tenant}, headers=root
            )
            assert r.status_code == 201
        ws = await open_client(live, "acme", "approver", sub="alice")
        spy = await open_client(live, "other", "admin", sub="eve")
        try:
            note = await subscribe(ws, "approvals")
            assert note["data"]["channel"] == "approvals"
            await subscribe(spy, "approvals")
            r = await http.post(
                "/v1/tenants/acme/tasks",
                json={
                    "capability": "deploy",
                    "payload": {"env": "prod"},
                    "requires_approval": True,
                },
                headers=live.auth("acme", "orchestrator"),
            )
            assert r.status_code == 201
            task_id = r.json()["task_id"]
            requested = await recv_type(ws, "approval_update")
            assert requested["data"]["action"] == "requested"
            assert requested["data"]["approval_id"] == f"{task_id}__a1"
            assert requested["data"]["data"]["arguments"] == {"env": "prod"}
            r = await http.post(
                f"/v1/tenants/acme/approvals/{task_id}__a1/approve",
                json={"comment": "go"},
                headers=live.auth("acme", "approver", sub="alice"),
            )
            assert r.status_code == 200, r.text
            decided = await recv_type(ws, "approval_update")
            assert decided["data"]["action"] == "decided"
            assert decided["data"]["data"]["decided_by"] == "alice"
            assert decided["data"]["data"]["decision"] == "approved"
            leaked = [m for m in await drain(spy, 0.5) if m["type"] == "approval_update"]
            assert leaked == []
        finally:
            await ws.close()
            await spy.close()
