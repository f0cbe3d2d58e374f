"""One truth through real processes: tasks submitted with ``Mesh.submit`` by a client that
has only the broker are recorded by the control plane of ``agentmesh up`` and read back,
completed, with their agent and lifecycle, through REST."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.runtime.embedded import free_port
from tests.e2e.test_product import AGENTMESH, ROOT
from tests.helpers import cli_token, wait_until

pytestmark = pytest.mark.e2e

CLIENT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from agentmesh import Mesh

    async def main() -> None:
        mesh = Mesh(os.environ["NATS_URL"], tenant=sys.argv[1])
        await mesh.transport.connect()
        ids = [await mesh.submit("echo", {"n": i}) for i in range(int(sys.argv[2]))]
        await mesh.transport.close()
        print(json.dumps(ids))

    asyncio.run(main())
    """
)


def test_tasks_submitted_from_a_broker_only_client_are_the_control_planes(
    tmp_path: Path,
) -> None:
    env = dict(
        os.environ,
        AGENTMESH_DATA_DIR=str(tmp_path / "plane"),
        AGENTMESH_HEARTBEAT_INTERVAL="0.5",
        LOG_LEVEL="WARNING",
    )
    env.pop("NATS_URL", None)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with (tmp_path / "up.log").open("wb") as log:
        procs.append(
            subprocess.Popen(
                [AGENTMESH, "up", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    base = f"http://127.0.0.1:{port}"
    client: httpx.Client | None = None
    try:
        wait_until(
            lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 60, "the API up"
        )
        runtime = json.loads((tmp_path / "plane" / "runtime.json").read_text())

        def token(tenant: str) -> str:

            return cli_token(env, tenant)

        made = httpx.post(
            f"{base}/v1/tenants",
            json={"tenant_id": "truth", "name": "One Truth"},
            headers={"Authorization": f"Bearer {token('_system')}"},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token('truth')}"}, timeout=10
        )
        agent_env = {**env, "NATS_URL": runtime["nats_url"]}
        with (tmp_path / "agent.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        AGENTMESH,
                        "agent",
                        "start",
                        "echoer-1",
                        "--capabilities",
                        "echo",
                        "--tenant",
                        "truth",
                    ],
                    cwd=ROOT,
                    env=agent_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

        def agent_doc() -> dict[str, Any] | None:
            r = client.get("/v1/tenants/truth/agents/echoer-1")
            return r.json() if r.status_code == 200 else None

        wait_until(agent_doc, 30, "the agent registered through its heartbeats")

        # a client with the broker only: no database settings, another working directory
        client_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DATABASE", "AGENTMESH_"))
        }
        client_env["NATS_URL"] = runtime["nats_url"]
        # the bus authenticates every client: this one presents an agent token of its tenant
        client_env["AGENTMESH_TOKEN"] = cli_token(env, "truth", "agent")
        (tmp_path / "elsewhere").mkdir()
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, "truth", "100"],
            cwd=tmp_path / "elsewhere",
            env=client_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        ids: list[str] = json.loads(out.stdout)
        assert len(set(ids)) == 100
        assert not (tmp_path / "elsewhere" / ".agentmesh").exists()

        def all_completed() -> list[dict[str, Any]] | None:
            page = client.get(
                "/v1/tenants/truth/tasks", params={"status": "completed", "limit": 200}
            ).json()
            return page["tasks"] if len(page["tasks"]) == 100 else None

        wait_until(all_completed, 60, "100 tasks completed in the store")
        for task_id in ids:
            doc = client.get(f"/v1/tenants/truth/tasks/{task_id}").json()
            assert doc["status"] == "completed", doc
            assert doc["agent_id"] == "echoer-1"
            assert doc["result"]["echo"]["n"] == doc["payload"]["n"]
            assert doc["started_at"] is not None, json.dumps(doc)
            assert doc["submitted_at"] <= doc["started_at"] <= doc["completed_at"], doc
            assert [s["status"] for s in doc["timeline"]] == [
                "submitted",
                "offered",
                "assigned",
                "running",
                "completed",
            ]
            assert doc["queued_seconds"] >= 0
            assert doc["run_seconds"] >= 0

        def counted() -> dict[str, Any] | None:
            doc = agent_doc()
            return doc if doc and doc["tasks_completed"] == 100 else None

        doc = wait_until(counted, 30, "the agent's 100 completed tasks")
        assert doc["tasks_assigned"] == 100
        assert doc["last_heartbeat"] is not None
        assert doc["active_tasks"] == []
        assert doc["status"] == "AVAILABLE"
    finally:
        if client is not None:
            client.close()
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
