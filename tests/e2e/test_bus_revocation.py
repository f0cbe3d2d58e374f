"""Revocation at process level: `agentmesh up` and agent processes of two tenants; a
deactivated tenant's (or revoked token's) agent processes lose the bus within 5 s, the
other tenant keeps working."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from agentmesh.runtime.embedded import free_port
from tests.e2e.test_product import AGENTMESH, ROOT
from tests.helpers import cli_token, wait_until

pytestmark = pytest.mark.e2e

DISCONNECTED = "disconnected from NATS"


def test_deactivating_a_tenant_or_revoking_a_token_disconnects_its_agents(
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    gone, kept, revoked = f"gone-{suffix}", f"kept-{suffix}", f"rev-{suffix}"
    env = dict(
        os.environ,
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.5",
        LOG_LEVEL="WARNING",
        PROMETHEUS_ENABLED="false",
    )
    env.pop("NATS_URL", None)
    env.pop("AGENTMESH_TOKEN", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *args: str, extra: dict[str, str] | None = None) -> Path:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [AGENTMESH, *args],
                    cwd=ROOT,
                    env={**env, **(extra or {})},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        return log

    try:
        spawn("up", "up", "--port", str(port))
        wait_until(
            lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 30, "the API up"
        )
        platform = {"Authorization": f"Bearer {cli_token(env, '_system', 'admin')}"}
        for tenant in (gone, kept, revoked):
            r = httpx.post(
                f"{base}/v1/tenants",
                json={"name": tenant, "tenant_id": tenant},
                headers=platform,
                timeout=10,
            )
            assert r.status_code == 201, r.text
        revoked_token = cli_token(env, revoked, "agent")
        logs = {
            gone: spawn(gone, "agent", "start", "worker-g", "-c", "echo", "--tenant", gone),
            kept: spawn(kept, "agent", "start", "worker-k", "-c", "echo", "--tenant", kept),
            revoked: spawn(
                revoked,
                *("agent", "start", "worker-r", "-c", "echo", "--tenant", revoked),
                extra={"AGENTMESH_TOKEN": revoked_token},
            ),
        }

        def live(tenant: str, agent: str) -> bool:
            r = httpx.get(f"{base}/v1/tenants/{tenant}/agents/{agent}", headers=platform)
            return r.status_code == 200 and r.json()["status"] in ("AVAILABLE", "available")

        for tenant, agent in ((gone, "worker-g"), (kept, "worker-k"), (revoked, "worker-r")):
            wait_until(lambda t=tenant, a=agent: live(t, a), 30, f"{agent} registered")

        started = time.monotonic()
        r = httpx.post(f"{base}/v1/tenants/{gone}/deactivate", json={}, headers=platform)
        assert r.status_code == 200, r.text
        assert r.json()["is_active"] is False
        assert r.json()["disconnected"] >= 1
        wait_until(lambda: DISCONNECTED in logs[gone].read_text(), 5, "tenant agent dropped")
        assert time.monotonic() - started < 5

        admin = {"Authorization": f"Bearer {cli_token(env, revoked, 'admin')}"}
        jti = jwt.decode(revoked_token, options={"verify_signature": False})["jti"]
        started = time.monotonic()
        r = httpx.post(f"{base}/v1/tenants/{revoked}/tokens/{jti}/revoke", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["disconnected"] >= 1
        wait_until(lambda: DISCONNECTED in logs[revoked].read_text(), 5, "revoked agent dropped")
        assert time.monotonic() - started < 5

        # the other tenant is unaffected: its agent still takes and completes work
        assert DISCONNECTED not in logs[kept].read_text()
        kept_auth = {"Authorization": f"Bearer {cli_token(env, kept, 'admin')}"}
        created = httpx.post(
            f"{base}/v1/tenants/{kept}/tasks",
            json={"capability": "echo", "payload": {"n": 1}},
            headers=kept_auth,
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["task_id"]

        def completed() -> dict[str, Any] | None:
            doc = httpx.get(f"{base}/v1/tenants/{kept}/tasks/{task_id}", headers=kept_auth).json()
            return doc if doc["status"] == "completed" else None

        assert (
            wait_until(completed, 30, "the kept tenant's task completed")["agent_id"] == "worker-k"
        )
        # a tenant admin may not deactivate tenants (a platform operation)
        denied = httpx.post(f"{base}/v1/tenants/{kept}/deactivate", json={}, headers=kept_auth)
        assert denied.status_code == 403
        status = subprocess.run(
            [AGENTMESH, "status", "--json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert '"auth": "tokens (auth callout)"' in status.stdout, status.stdout + status.stderr
        secrets = [
            line.split("=", 1)[1]
            for line in (tmp_path / "secrets").read_text().splitlines()
            if "=" in line
        ]
        auth_file = json.loads((tmp_path / "nats" / "auth.json").read_text())
        secrets += [auth_file["auth_password"], auth_file["system_password"], revoked_token]
        for secret in secrets:
            assert secret not in status.stdout + status.stderr
        for name in ("up", gone, kept, revoked):
            text = (tmp_path / f"{name}.log").read_text()
            assert revoked_token not in text
            assert revoked_token.split(".")[2] not in text
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
