"""Every agent and task event type of the spec comes out of a real run: an agent process,
the control plane, a broker-only client, SIGSTOP past the health timeout, a restart with
more capabilities, a termination."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh
from agentmesh.application import Application
from agentmesh.commands import CreateTenant, GetAgent, GetTask, TerminateAgent
from agentmesh.errors import NotFound
from tests.helpers import fast_settings, until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")

AGENT_EVENTS = {
    "AgentCreated",
    "AgentActivated",
    "AgentCapabilityAdded",
    "AgentCapabilityUpgraded",
    "AgentTaskAssigned",
    "AgentTaskCompleted",
    "AgentTaskFailed",
    "AgentStatusChanged",
    "AgentHealthCheckPassed",
    "AgentHealthCheckFailed",
    "AgentPaused",
    "AgentResumed",
    "AgentTerminated",
    "AgentHeartbeatReceived",
}
TASK_EVENTS = {
    "TaskSubmitted",
    "TaskOffered",
    "TaskAssigned",
    "TaskStarted",
    "TaskCompleted",
    "TaskFailed",
    "TaskRetrying",
    "TaskDeadLettered",
    "TaskCancelled",
    "TaskTimedOut",
}


async def settled(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 15) -> Any:
    """:func:`tests.helpers.until` where the store not knowing the thing yet is "not yet"."""
    return await until(check, timeout, what, not_yet=(NotFound,))


@pytest.fixture
def agents() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


async def test_every_event_type_comes_from_a_real_run(
    tmp_path: Path, nats_url: str, agents: list[subprocess.Popen[bytes]]
) -> None:
    settings = fast_settings(
        tmp_path,
        nats_url=nats_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'plane.db'}",
        agentmesh_health_check_timeout=1.5,
    )
    app = Application.from_settings(settings, projection_interval=0.05, sweep_interval=0.3)
    await app.start()
    tenant = f"real-{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        NATS_URL=nats_url,
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.2",
        AGENTMESH_MAX_DELIVER="2",
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="WARNING",
    )

    def start_agent(capabilities: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"agent-{len(agents)}.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    AGENTMESH,
                    "agent",
                    "start",
                    "truth-1",
                    "--capabilities",
                    capabilities,
                    "--tenant",
                    tenant,
                    "--handler",
                    "tests.integration.truth_agents:work",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        agents.append(proc)
        return proc

    async def agent() -> dict[str, Any]:
        doc: dict[str, Any] = await app.bus.query(GetAgent(tenant, "truth-1"))
        return doc

    async def status(task_id: str, wanted: str) -> bool:
        doc = await app.bus.query(GetTask(tenant, task_id))
        return bool(doc["status"] == wanted)

    client = Mesh(nats_url, tenant=tenant, settings=settings)
    try:
        await app.bus.execute(CreateTenant(tenant, tenant_id=tenant))
        proc = start_agent("work:2")
        await settled(agent, "the agent registered by its heartbeats", 30)
        await client.transport.connect()

        ok = await client.submit("work", {"mode": "ok"})
        flaky = await client.submit("work", {"mode": "flaky"}, max_attempts=2)
        bad = await client.submit("work", {"mode": "fail"}, max_attempts=1)
        slow = await client.submit("work", {"mode": "slow", "seconds": 60})
        lonely = await client.submit("nobody", {}, timeout_seconds=1, max_attempts=1)
        for task_id, wanted in ((ok, "completed"), (flaky, "completed"), (bad, "dead_lettered")):
            await settled(lambda t=task_id, w=wanted: status(t, w), f"{task_id} {wanted}")
        await settled(lambda: status(slow, "running"), "the slow task running")
        await client.cancel(slow)
        await settled(lambda: status(slow, "cancelled"), "the slow task cancelled")
        await settled(lambda: status(lonely, "dead_lettered"), "the lonely task timed out", 20)

        # paused and resumed through the process itself
        await app.mesh.control("truth-1", "pause", tenant=tenant)
        await settled(lambda: _is(agent, "PAUSED"), "paused in the store")
        await app.mesh.control("truth-1", "resume", tenant=tenant)
        await settled(lambda: _is(agent, "AVAILABLE"), "resumed in the store")

        # frozen past the health timeout, then alive again
        proc.send_signal(signal.SIGSTOP)
        await settled(lambda: _is(agent, "UNHEALTHY"), "unhealthy after SIGSTOP", 20)
        proc.send_signal(signal.SIGCONT)
        await settled(lambda: _is(agent, "AVAILABLE"), "healthy after SIGCONT", 20)

        # restarted with a higher level and one more capability
        proc.terminate()
        proc.wait(20)
        await settled(lambda: _is(agent, "UNHEALTHY"), "stopped (heard as TERMINATED)")
        proc = start_agent("work:4,extra:3")

        async def upgraded() -> bool:
            caps = {c["name"]: c["level"] for c in (await agent())["capabilities"]}
            return caps == {"work": 4, "extra": 3}

        await settled(upgraded, "the restart's capabilities recorded", 30)
        proc.terminate()
        proc.wait(20)
        await settled(lambda: _is(agent, "UNHEALTHY"), "stopped again")
        await app.bus.execute(TerminateAgent(tenant, "truth-1", "decommissioned"))

        await app.plane.persistence.projector.catch_up()  # type: ignore[union-attr]
        seen: set[str] = set()
        position = 1
        store = app.plane.persistence.store  # type: ignore[union-attr]
        while batch := await store.read_all(position, 1000):
            seen |= {e.event_type for e in batch if e.tenant_id == tenant}
            position = batch[-1].position + 1
        assert AGENT_EVENTS - seen == set()
        assert TASK_EVENTS - seen == set()
    finally:
        await client.transport.close()
        await app.stop()


async def _is(agent: Callable[[], Awaitable[dict[str, Any]]], wanted: str) -> bool:
    return bool((await agent())["status"] == wanted)
