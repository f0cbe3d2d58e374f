"""Deadlines of approval rules applied by a running control plane (its sweeper), with
short deadlines: auto-reject, auto-approve (offered to the agent, which runs it), and
escalation to a role (then its own deadline), plus the reminder; all audited."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.commands import CreateTenant, SubmitTask
from agentmesh.commands.approvals import DecideApproval, GetApproval
from agentmesh.commands.safety import SetSafetyPolicy
from agentmesh.controlplane import ControlPlane
from agentmesh.errors import Forbidden
from agentmesh.security.audit import AuditFilter
from tests.helpers import eventually, fast_settings, until

pytestmark = pytest.mark.integration

RULES = [
    {"name": "r", "capability": "rej", "deadline_seconds": 0.4},
    {"name": "a", "capability": "auto", "deadline_seconds": 0.4, "on_timeout": "approve"},
    {
        "name": "e",
        "capability": "esc",
        "deadline_seconds": 0.4,
        "on_timeout": "escalate",
        "escalate_to": "admin",
        "escalate_seconds": 0.8,
    },
    {"name": "m", "capability": "remind", "remind_after_seconds": 0.3},
]


async def test_deadline_fallbacks_escalation_and_reminder(tmp_path: Path) -> None:
    tenant = "t" + uuid.uuid4().hex[:8]
    settings = fast_settings(tmp_path, database_url="memory://", agentmesh_safety=False)
    mesh = Mesh(f"memory://{uuid.uuid4().hex}", tenant=tenant, settings=settings)
    ran: list[str] = []

    @mesh.agent("auto-worker", capabilities=["auto"])
    async def work(task: TaskContext) -> dict[str, Any]:
        ran.append(task.task_id)
        return {"ok": True}

    plane = ControlPlane(settings, mesh, projection_interval=0.05)
    await mesh.start()
    await plane.start()
    assert plane.approvals is not None
    plane.approvals.interval = 0.1
    bus = plane.bus
    try:
        await bus.execute(CreateTenant("Deadlines " + tenant, tenant_id=tenant))
        await bus.execute(SetSafetyPolicy(tenant, {"version": 2, "approvals": RULES}, "admin"))
        for cap in ("rej", "auto", "esc", "remind"):
            await bus.execute(SubmitTask(tenant, cap, {"n": 1}, task_id=f"{cap}-1"))
        assert plane.persistence is not None
        rm = plane.persistence.read_models

        async def status(task_id: str) -> str:
            await plane.persistence.projector.catch_up()  # type: ignore[union-attr]
            doc = await rm.get_task(tenant, task_id)
            return str(doc["status"]) if doc else ""

        async def reaches(task_id: str, want: str, timeout: float = 10) -> None:
            async def there() -> bool:
                return await status(task_id) == want

            await until(there, timeout, f"{task_id} {want}")

        await reaches("rej-1", "rejected")
        await reaches("auto-1", "completed")
        assert ran == ["auto-1"]
        await eventually(
            lambda: "escalated" in [w for _, t, w in plane.approvals.swept if t == "esc-1"],
            timeout=10,
        )
        esc = await bus.query(GetApproval(tenant, "esc-1__a1"))
        assert esc["status"] == "pending"
        assert esc["required_role"] == "admin"
        with pytest.raises(Forbidden):
            await bus.execute(
                DecideApproval(tenant, "esc-1__a1", "approved", "bob", roles=("approver",))
            )
        await reaches("esc-1", "rejected")  # the escalated approval's own deadline
        await eventually(
            lambda: ("remind-1", "reminded") in [(t, w) for _, t, w in plane.approvals.swept],
            timeout=10,
        )
        assert await status("remind-1") == "pending_approval"
        assert plane.audit is not None

        async def actions() -> list[str]:
            await plane.persistence.projector.catch_up()  # type: ignore[union-attr]
            entries, _ = await plane.audit.query(AuditFilter(tenant_id=tenant), limit=500)  # type: ignore[union-attr]
            return [e.action.value for e in entries]

        seen = await actions()
        assert seen.count("approval_timeout") == 3  # rej, auto, esc (after escalation)
        assert seen.count("approval_escalated") == 1
        assert seen.count("approval_reminded") == 1
    finally:
        await plane.stop()
        await mesh.stop()
