"""A real `agentmesh up` with the calculator and lookup tool agents (examples/llm_agents.py
--part tools) for the interop end-to-end tests of one module."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.runtime.embedded import free_port
from tests.helpers import cli_token, unique_tenant, wait_until
from tests.processes import stop_processes

ROOT = Path(__file__).resolve().parents[3]
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")


@dataclass
class Up:
    """A running mesh: its REST base URL, tenant, env, an admin token, the processes."""

    base: str
    tenant: str
    env: dict[str, str]
    token: str
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, *argv: str, **extra: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            p = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **extra}, stdout=out, stderr=out)
        self.procs.append(p)
        return p

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def client(self) -> httpx.Client:
        auth = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.base, headers=auth, timeout=10)

    def listed(self, *agent_ids: str) -> bool:
        with self.client() as c:
            r = c.get(f"/v1/tenants/{self.tenant}/agents/live")
            return set(agent_ids) <= {a["agent_id"] for a in r.json()["agents"]}

    def submit(self, capability: str, payload: dict[str, Any]) -> str:
        """A task submitted over REST; its id."""
        with self.client() as rest:
            created = rest.post(
                f"/v1/tenants/{self.tenant}/tasks",
                json={"capability": capability, "payload": payload},
            )
        assert created.status_code == 201, created.text
        return str(created.json()["task_id"])

    def task_in(self, task_id: str, statuses: set[str], timeout: float, what: str) -> Any:
        """Wait until the control plane shows the task in one of ``statuses``; its document."""

        def reached() -> dict[str, Any] | None:
            with self.client() as rest:
                doc: dict[str, Any] = rest.get(f"/v1/tenants/{self.tenant}/tasks/{task_id}").json()
            return doc if doc.get("status") in statuses else None

        return wait_until(reached, timeout, what)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data = tmp_path_factory.mktemp("interop-up")
    tenant = unique_tenant()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "NATS_"))}
    env.update(
        AGENTMESH_DATA_DIR=str(data),
        AGENTMESH_HEARTBEAT_INTERVAL="0.3",
        AGENTMESH_TENANT=tenant,
        LOG_LEVEL="WARNING",
    )
    port = free_port()
    mesh = Up(f"http://127.0.0.1:{port}", tenant, env, "", data / "procs.log")
    try:
        mesh.spawn(AGENTMESH, "up", "--port", str(port))
        wait_until(
            lambda: httpx.get(f"{mesh.base}/health", timeout=2).status_code == 200,
            40,
            "the API: " + mesh.logs(),
        )
        made = httpx.post(
            f"{mesh.base}/v1/tenants",
            json={"tenant_id": tenant, "name": "Interop"},
            headers={"Authorization": f"Bearer {cli_token(env, '_system')}"},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        mesh.token = cli_token(env, tenant)
        mesh.spawn(sys.executable, "examples/llm_agents.py", "--part", "tools")
        wait_until(
            lambda: mesh.listed("calculator-1", "lookup-1"), 40, "tool agents: " + mesh.logs()
        )
        yield mesh
    finally:
        stop_processes(mesh.procs)
