"""The whole product as a user drives it: `agentmesh up`, an agent process, REST, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.runtime.embedded import free_port
from tests.helpers import cli_token, wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")


def test_rest_cli_and_agent_processes_work_together(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.5",
        LOG_LEVEL="WARNING",
    )
    env.pop("NATS_URL", None)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with (tmp_path / "up.log").open("wb") as log:
        procs.append(
            subprocess.Popen(
                [AGENTMESH, "up", "--demo", "--port", str(port)],
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
            lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 30, "the API up"
        )
        token = cli_token(env, "demo")
        auth = {"Authorization": f"Bearer {token}"}
        with (tmp_path / "agent.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        AGENTMESH,
                        "agent",
                        "start",
                        "shouter-9",
                        "--capabilities",
                        "shout",
                        "--tenant",
                        "demo",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        client = httpx.Client(base_url=base, headers=auth, timeout=10)

        def listed() -> bool:
            agents = client.get("/v1/tenants/demo/agents", params={"limit": 100}).json()["agents"]
            return "shouter-9" in {a["agent_id"] for a in agents}

        wait_until(listed, 30, "the agent process registered through its heartbeats")
        created = client.post(
            "/v1/tenants/demo/tasks", json={"capability": "shout", "payload": {"text": "hi"}}
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["task_id"]

        def completed() -> dict[str, Any] | None:
            doc = client.get(f"/v1/tenants/demo/tasks/{task_id}").json()
            return doc if doc["status"] == "completed" else None

        doc = wait_until(completed, 30, "the task completed")
        assert doc["agent_id"] == "shouter-9"
        assert doc["result"]["echo"] == {"text": "hi", "task_id": task_id}

        paused = client.post("/v1/tenants/demo/agents/shouter-9/pause", json={})
        assert paused.status_code == 200, paused.text

        def live_status() -> str | None:
            out = subprocess.run(
                [AGENTMESH, "status", "--json"], env=env, capture_output=True, text=True, timeout=60
            )
            agents = {a["agent_id"]: a for a in json.loads(out.stdout)["agents"]}
            return (
                str(agents["shouter-9"]["status"])
                if agents["shouter-9"]["status"] == "PAUSED"
                else None
            )

        assert wait_until(live_status, 20, "the agent process paused") == "PAUSED"
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert "agentmesh_messages_routed_total" in metrics
        other = cli_token(env, "other-tenant")
        denied = httpx.get(
            f"{base}/v1/tenants/demo/tasks/{task_id}", headers={"Authorization": f"Bearer {other}"}
        )
        assert denied.status_code == 404  # another tenant's object: indistinguishable from absent
        assert denied.json()["code"] == "TASK_NOT_FOUND"
        assert "shouter-9" not in denied.text
    finally:
        if client is not None:
            client.close()
        for proc in reversed(procs):
            proc.send_signal(signal.SIGINT)
        codes = [proc.wait(30) for proc in procs]
    assert codes == [0, 0], (tmp_path / "up.log").read_text()[-2000:] + (
        tmp_path / "agent.log"
    ).read_text()[-2000:]
