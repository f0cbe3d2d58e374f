"""The seed's start command, ``uvicorn agentmesh.api.fastapi_app:app`` with ``NATS_URL``,
serves a whole control plane: a task submitted through it is run by an agent process and
recorded with its outcome."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.runtime.embedded import free_port
from tests.e2e.test_product import AGENTMESH, ROOT
from tests.helpers import cli_token, wait_until

pytestmark = pytest.mark.e2e


def test_uvicorn_module_app_relays_and_records(tmp_path: Path, nats_url: str) -> None:
    env = dict(
        os.environ,
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.5",
        NATS_URL=nats_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'plane.db'}",
        LOG_LEVEL="WARNING",
    )
    env.pop("AGENTMESH_TRANSPORT", None)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with (tmp_path / "uvicorn.log").open("wb") as log:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "agentmesh.api.fastapi_app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{base}/health/ready", timeout=2).status_code == 200,
            60,
            "the control plane ready (store and broker)",
        )

        def token(tenant: str) -> str:

            return cli_token(env, tenant)

        made = httpx.post(
            f"{base}/v1/tenants",
            json={"tenant_id": "seedco", "name": "Seed Co"},
            headers={"Authorization": f"Bearer {token('_system')}"},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        with (tmp_path / "agent.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        AGENTMESH,
                        "agent",
                        "start",
                        "seed-agent",
                        "--capabilities",
                        "greet",
                        "--tenant",
                        "seedco",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token('seedco')}"}, timeout=10
        ) as client:
            wait_until(
                lambda: client.get("/v1/tenants/seedco/agents/seed-agent").status_code == 200,
                30,
                "the agent process known to the plane",
            )
            created = client.post(
                "/v1/tenants/seedco/tasks", json={"capability": "greet", "payload": {"to": "x"}}
            )
            assert created.status_code == 201, created.text
            task_id = created.json()["task_id"]

            def completed() -> dict[str, Any] | None:
                doc: dict[str, Any] = client.get(f"/v1/tenants/seedco/tasks/{task_id}").json()
                return doc if doc["status"] == "completed" else None

            doc = wait_until(completed, 30, "the task run by the agent process")
            assert doc["agent_id"] == "seed-agent"
            assert doc["result"]["echo"]["to"] == "x"
            assert [s["status"] for s in doc["timeline"]][-3:] == [
                "assigned",
                "running",
                "completed",
            ]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
