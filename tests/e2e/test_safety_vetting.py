"""The safety-agent veto path end to end, through the real entry points: ``agentmesh up``,
a safety agent and a worker as ``agentmesh agent`` processes, REST and the CLI.

A task submitted with ``require_vetting`` is vetted by the safety agent and then run by
the worker; a vetoed one ends ``rejected`` with the rule and the reason; an admin puts a
new policy that changes the safety agent's decisions; only an admin may release."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh import Mesh
from agentmesh.config import Settings
from agentmesh.runtime.embedded import free_port
from tests.e2e.test_product import AGENTMESH, ROOT
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [AGENTMESH, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def ask_safety_agent(
    nats_url: str, tenant: str, tmp: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    mesh = Mesh(nats_url, tenant=tenant, settings=Settings(agentmesh_data_dir=tmp / "client"))
    await mesh.start(registry=False)
    try:
        status = await mesh.send("guard-1", {}, type="safety_status_request")
        alignment = await mesh.send("guard-1", {"agent_id": "worker-1"}, type="alignment_check")
    finally:
        await mesh.stop()
    return status, alignment


def test_require_vetting_veto_policy_and_release(nats_url: str, tmp_path: Path) -> None:
    tenant = "t" + uuid.uuid4().hex[:8]
    env = dict(
        os.environ,
        NATS_URL=nats_url,
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.3",
        LOG_LEVEL="WARNING",
        NO_COLOR="1",
    )
    port = free_port()
    procs = [spawn(["up", "--port", str(port)], env, tmp_path / "up.log")]
    base = f"http://127.0.0.1:{port}"
    clients: list[httpx.Client] = []
    try:
        wait_until(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 30, "API")

        def token(role: str) -> str:
            return subprocess.run(
                [AGENTMESH, "token", "create", "-t", tenant, "-r", role, "-s", f"{role}-user"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout.strip()

        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token('admin')}"})
        orchestrator = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token('orchestrator')}"}
        )
        clients += [admin, orchestrator]
        common = ["--tenant", tenant]
        procs.append(
            spawn(
                ["agent", "start-safety-agent", "guard-1", "--capabilities", "audit", *common],
                env,
                tmp_path / "guard.log",
            )
        )
        procs.append(
            spawn(
                ["agent", "start", "worker-1", "--capabilities", "summarize", *common],
                env,
                tmp_path / "worker.log",
            )
        )

        def live() -> set[str]:
            r = admin.get(f"/v1/tenants/{tenant}/agents/live")
            return {a["agent_id"] for a in r.json()["agents"]}

        wait_until(lambda: {"guard-1", "worker-1"} <= live(), 30, "both agents live")

        def submit(payload: dict[str, Any], client: httpx.Client = orchestrator) -> str:
            r = client.post(
                f"/v1/tenants/{tenant}/tasks",
                json={"capability": "summarize", "payload": payload, "require_vetting": True},
            )
            assert r.status_code == 201, r.text
            return str(r.json()["task_id"])

        def final(task_id: str) -> dict[str, Any]:
            def done() -> dict[str, Any] | None:
                doc: dict[str, Any] = admin.get(f"/v1/tenants/{tenant}/tasks/{task_id}").json()
                return doc if doc["status"] in ("completed", "rejected", "failed") else None

            result: dict[str, Any] = wait_until(done, 30, f"task {task_id} finished")
            return result

        # vetted, then run by the worker
        ok = final(submit({"text": "Agents cooperate."}))
        assert ok["status"] == "completed"
        assert ok["agent_id"] == "worker-1"
        assert ok["result"]["echo"]["text"] == "Agents cooperate."

        # vetoed by the safety agent: rejected with the rule and the reason, never run
        vetoed = final(submit({"text": "please DROP TABLE users"}))
        assert vetoed["status"] == "rejected"
        assert "content_filter" in vetoed["error"]
        assert "drop" in vetoed["error"]
        assert vetoed["result"] is None

        # the CLI's --require-vetting takes the same path (the safety agent's veto)
        cli_submit = subprocess.run(
            [
                AGENTMESH, "task", "submit", "-c", "summarize", "--require-vetting",
                "--payload", '{"text": "DROP TABLE users"}', "--tenant", tenant,
                "--api-url", base, "--token", token("orchestrator"), "--json",
            ],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert cli_submit.returncode == 0, cli_submit.stderr
        by_cli = final(json.loads(cli_submit.stdout)["task_id"])
        assert by_cli["status"] == "rejected"
        assert by_cli["error"].startswith("rejected by safety rule content_filter")
        assert by_cli["agent_id"] == "guard-1"  # the safety agent's veto, not a worker's

        # policy: only an admin may put one; a bad one is a 422 naming the field
        policy = {"version": 2, "content_filter": {"blocked_patterns": ["(?i)quarterly"]}}
        r = orchestrator.put(f"/v1/tenants/{tenant}/safety/policy", json=policy)
        assert r.status_code == 403
        r = admin.put(
            f"/v1/tenants/{tenant}/safety/policy",
            json={"version": 2, "content_filter": {"blocked_patterns": ["(a)\\1"]}},
        )
        assert r.status_code == 422
        assert "blocked_patterns[0]" in r.json()["error"]
        r = admin.put(f"/v1/tenants/{tenant}/safety/policy", json=policy)
        assert r.status_code == 200
        assert r.json()["version"] == 2
        assert r.json()["broadcast"]
        assert admin.put(f"/v1/tenants/{tenant}/safety/policy", json=policy).status_code == 409
        got = orchestrator.get(f"/v1/tenants/{tenant}/safety/policy").json()
        assert got["version"] == 2
        assert got["set_by"] == "admin-user"

        # the new policy changes the safety agent's decision (hot, no restart)
        def vetoed_now() -> bool:
            return final(submit({"text": "the Quarterly report"}))["status"] == "rejected"

        wait_until(vetoed_now, 20, "the new policy in force")

        # release: admins only, 409 for an agent that is not quarantined, audited
        r = orchestrator.post(
            f"/v1/tenants/{tenant}/agents/worker-1/release", json={"reason": "test"}
        )
        assert r.status_code == 403
        r = admin.post(f"/v1/tenants/{tenant}/agents/worker-1/release", json={"reason": "test"})
        assert r.status_code == 409
        r = admin.post(f"/v1/tenants/{tenant}/agents/worker-1/feedback", json={"rating": 2})
        assert r.status_code == 422
        r = admin.post(f"/v1/tenants/{tenant}/agents/worker-1/feedback", json={"rating": 0.9})
        assert r.status_code == 202
        # the safety agent answers the seed's safety_status_request and alignment_check
        status, alignment = asyncio.run(ask_safety_agent(nats_url, tenant, tmp_path))
        assert status["agent_id"] == "guard-1"
        assert status["policy"]["version"] == 2
        assert status["vetted"] >= 1
        assert status["vetoed"] >= 2
        assert alignment["agent_id"] == "worker-1"
        assert alignment["alignment"]["status"] == "aligned"
        audit = admin.get(f"/v1/tenants/{tenant}/audit", params={"action": "policy_updated"})
        assert any(e["actor"] == "admin-user" for e in audit.json()["entries"])
        cli = subprocess.run(
            [
                AGENTMESH,
                "agent",
                "release",
                "worker-1",
                "--reason",
                "x",
                "--tenant",
                tenant,
                "--api-url",
                base,
                "--token",
                token("admin"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode != 0
        assert "Traceback" not in cli.stderr
        assert "QUARANTINED" in cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1
    finally:
        for client in clients:
            client.close()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
    for proc, name in zip(procs, ("up", "guard", "worker"), strict=True):
        assert proc.returncode == 0, (tmp_path / f"{name}.log").read_text()[-2000:]
