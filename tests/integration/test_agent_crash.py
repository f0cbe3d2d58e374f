"""An agent process killed with SIGKILL loses nothing: another agent handles its tasks."""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from agentmesh import Envelope, Mesh
from agentmesh.config import Settings
from tests.helpers import eventually
from tests.processes import start_agent_process

pytestmark = pytest.mark.integration


def start_agent(
    agent_id: str, tenant: str, nats_url: str, data_dir: Path, hang: bool
) -> subprocess.Popen[bytes]:
    return start_agent_process(
        agent_id,
        tenant,
        capability="crunch",
        handler="tests.integration.agent_handlers:crunch",
        max_concurrent=4,
        data_dir=data_dir,
        env={"NATS_URL": nats_url, "HANG": "1" if hang else "0"},
    )


async def test_sigkilled_agent_loses_no_task(nats_url: str, tmp_path: Path) -> None:
    tenant = "t" + uuid.uuid4().hex[:8]
    client = Mesh(
        nats_url,
        tenant=tenant,
        settings=Settings(agentmesh_data_dir=tmp_path, agentmesh_health_check_timeout=2),
    )  # type: ignore[call-arg]
    results: dict[str, list[dict[str, object]]] = {}

    async def on_done(env: Envelope) -> None:
        results.setdefault(str(env.payload["task_id"]), []).append(env.payload)

    await client.start()
    await client.on_event("task.completed", on_done, durable="crash-results")
    victim = start_agent("victim-1", tenant, nats_url, tmp_path, hang=True)
    survivor: subprocess.Popen[bytes] | None = None
    try:
        await eventually(lambda: client.registry.get(tenant, "victim-1") is not None, timeout=20)
        ids = [await client.submit("crunch", {"n": i}) for i in range(20)]
        victim_record = client.registry.get(tenant, "victim-1")
        assert victim_record is not None
        await eventually(lambda: victim_record.in_flight == 4, timeout=10)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        survivor = start_agent("survivor-1", tenant, nats_url, tmp_path, hang=False)
        await eventually(lambda: len(results) == 20, timeout=40)
        assert set(results) == set(ids)
        handled_by = {str(p["agent_id"]) for done in results.values() for p in done}
        assert handled_by == {"survivor-1"}
        redelivered = [p for done in results.values() for p in done if int(str(p["delivery"])) > 1]
        assert len(redelivered) == 4, "exactly the 4 tasks the victim held come back"
        assert all(p["attempt"] == 1 for done in results.values() for p in done), (
            "a crash is no failure"
        )
        await eventually(lambda: victim_record.status == "UNHEALTHY", timeout=10)
    finally:
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
        await client.stop()
    assert survivor is not None
    assert survivor.returncode == 0, (tmp_path / "survivor-1.log").read_text()
