"""``require_vetting`` from Python: ``Mesh.submit`` / ``Mesh.run`` offer the task to the
tenant's safety agent only; a vetted task runs on a worker with its own task id, a vetoed
one is rejected with the rule and never reaches a worker (memory broker and NATS)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh, RemoteError, TaskContext
from agentmesh.agents.safety import SafetyAgent
from agentmesh.config import Settings
from agentmesh.errors import ValidationError

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "nats"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return str(request.getfixturevalue("nats_url"))


async def test_python_submit_with_require_vetting_goes_through_the_safety_agent(
    url: str, tmp_path: Path
) -> None:
    tenant = "t" + uuid.uuid4().hex[:8]
    settings = Settings(agentmesh_data_dir=tmp_path, agentmesh_heartbeat_interval=0.2)  # type: ignore[call-arg]
    workers = Mesh(url, tenant=tenant, settings=settings)
    seen: list[tuple[str, Any, Any]] = []

    @workers.agent("worker-1", capabilities=["summarize"])
    async def summarize(task: TaskContext) -> dict[str, Any]:
        routing = task.envelope.routing
        seen.append((task.task_id, routing.get("vetting"), routing.get("vetted_by")))
        return {"summary": task.payload["text"][:10]}

    guard_mesh = Mesh(url, tenant=tenant, settings=settings)
    guard = SafetyAgent(guard_mesh, "guard-1", capabilities=["audit"])
    async with workers, guard_mesh:
        await guard.start()
        try:
            task_id = str(uuid.uuid4())
            out = await workers.run(
                "summarize", {"text": "Agents cooperate."}, task_id=task_id,
                require_vetting=True, timeout=20,
            )  # fmt: skip
            assert out == {"summary": "Agents coo"}
            assert seen == [(task_id, "approved", "guard-1")]
            assert guard.vetted == 1

            with pytest.raises(RemoteError) as caught:
                await workers.run(
                    "summarize", {"text": "please DROP TABLE users"},
                    require_vetting=True, timeout=20,
                )  # fmt: skip
            assert caught.value.code == "TASK_REJECTED"
            assert str(caught.value).startswith("vetoed by safety rule content_filter")
            assert len(seen) == 1  # never offered to a worker
            assert guard.vetoed == 1

            with pytest.raises(ValidationError):
                await workers.submit("summarize", {}, require_vetting=True, to_agent="worker-1")
        finally:
            await guard.stop()
