"""POST /tasks with a ``workflow_type``; GET /tasks?parent_task_id lists a task's subtasks."""

from __future__ import annotations

from agentmesh import subjects
from agentmesh.commands import CreateTenant, RecordTask
from agentmesh.envelope import Envelope
from tests.unit.api.conftest import Api


async def test_workflow_type_is_checked_and_offered_to_the_runner(api: Api) -> None:
    h = api.auth("acme", "orchestrator")
    url = "/v1/tenants/acme/tasks"
    body = {"subtasks": [{"capability": "count", "payload": {"text": "a"}}]}
    r = await api.client.post(
        url, json={"workflow_type": "orchestrator_worker", "payload": body}, headers=h
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["task_type"] == "orchestrator_worker"
    assert task["required_capabilities"] == ["workflow-orchestrator_worker"]
    assert task["payload"]["policy"] == "retry"  # the domain completed the defaults
    r = await api.client.post(
        url,
        json={"workflow_type": "market_based", "payload": {"capability": "render"}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    assert r.json()["task_type"] == "market"  # the seed's alias

    r = await api.client.post(url, json={"workflow_type": "blackboard"}, headers=h)
    assert r.status_code == 422
    assert "orchestrator_worker, hierarchical, market, swarm" in r.text
    for bad in (
        {"workflow_type": "orchestrator_worker", "payload": {}},  # no subtasks
        {"workflow_type": "market", "payload": {"capability": "bad cap"}},
        {"workflow_type": "swarm", "capability": "count"},
        {"payload": {}},  # neither a capability nor a workflow type
    ):
        r = await api.client.post(url, json=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)


async def test_subtasks_are_listed_by_parent(api: Api) -> None:
    h = api.auth("acme", "orchestrator")
    await api.ctx.bus.execute(CreateTenant("Acme parents", tenant_id="acme"))
    for i, parent in enumerate(("wf-1", "wf-1", "wf-2", None)):
        env = Envelope.create("task.offered", {"n": i}, tenant_id="acme")
        if parent:
            env.metadata["parent_task_id"] = parent
        await api.ctx.bus.execute(
            RecordTask(
                "acme",
                env.id,
                "count",
                env,
                subjects.task("acme", "count"),
                payload={"n": i},
                parent_task_id=parent,
            )
        )
    await api.ctx.caught_up()
    r = await api.client.get("/v1/tenants/acme/tasks", params={"parent_task_id": "wf-1"}, headers=h)
    assert r.status_code == 200, r.text
    listed = r.json()["tasks"]
    assert sorted(t["payload"]["n"] for t in listed) == [0, 1]
    assert {t["parent_task_id"] for t in listed} == {"wf-1"}
    r = await api.client.get("/v1/tenants/acme/tasks", headers=h)
    assert len(r.json()["tasks"]) == 4
    r = await api.client.get(
        "/v1/tenants/acme/tasks", params={"parent_task_id": "no spaces"}, headers=h
    )
    assert r.status_code == 422
