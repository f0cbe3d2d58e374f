"""``GET /v1/tenants/{t}/federated/rounds`` and federated events in the projector/audit."""

from __future__ import annotations

import numpy as np

from agentmesh.domain.federated_events import (
    FederatedModelCommittedEvent,
    FederatedRoundFailedEvent,
    FederatedUpdateRejectedEvent,
)
from agentmesh.federated.arrays import pack
from agentmesh.federated.history import append
from tests.unit.api.conftest import Api


async def test_rounds_of_a_tenant_with_metrics_and_audited_rejections(api: Api) -> None:
    store = api.ctx.persistence.store
    tenant = "fl-acme"
    await api.client.post("/v1/tenants", json={"name": tenant}, headers=api.root)
    params = pack(np.zeros(650))
    for event in (
        FederatedModelCommittedEvent(
            aggregate_id="job1", tenant_id=tenant, round=0, model_version=0, params=params
        ),
        FederatedUpdateRejectedEvent(
            aggregate_id="job1", tenant_id=tenant, round=1, agent_id="p9", reason="NaN or Inf"
        ),
        FederatedModelCommittedEvent(
            aggregate_id="job1",
            tenant_id=tenant,
            round=1,
            model_version=1,
            params=params,
            participants=("p1", "p2"),
            dropped=("p3",),
            samples=500,
            accuracy=0.91,
            loss=0.3,
            epsilon=1.2,
            secure=True,
        ),
        FederatedRoundFailedEvent(
            aggregate_id="job2", tenant_id=tenant, round=1, model_version=0, reason="too few"
        ),
    ):
        await append(store, event)
    await api.ctx.caught_up()  # the projector and the audit trail take federated events

    r = await api.client.get(
        f"/v1/tenants/{tenant}/federated/rounds", headers=api.auth(tenant, "observer")
    )
    assert r.status_code == 200, r.text
    rounds = r.json()["rounds"]
    assert [(x["job"], x["round"], x["status"]) for x in rounds] == [
        ("job1", 0, "committed"),
        ("job1", 1, "committed"),
        ("job2", 1, "failed"),
    ]
    one = rounds[1]
    assert (one["participants"], one["dropped"], one["rejected"]) == (["p1", "p2"], ["p3"], 1)
    assert (one["accuracy"], one["loss"], one["epsilon"]) == (0.91, 0.3, 1.2)
    assert rounds[2]["reason"] == "too few"
    r = await api.client.get(
        f"/v1/tenants/{tenant}/federated/rounds",
        params={"job": "job2"},
        headers=api.auth(tenant, "observer"),
    )
    assert [x["job"] for x in r.json()["rounds"]] == ["job2"]

    r = await api.client.get(
        f"/v1/tenants/{tenant}/audit",
        params={"action": "message_failed"},
        headers=api.auth(tenant, "admin"),
    )
    entries = r.json()["entries"]
    assert [(e["actor"], e["details"]["reason"]) for e in entries] == [("p9", "NaN or Inf")]

    other = await api.client.get(
        f"/v1/tenants/{tenant}/federated/rounds", headers=api.auth("someone-else", "admin")
    )
    assert other.status_code == 403
    long_job = await api.client.get(
        f"/v1/tenants/{tenant}/federated/rounds",
        params={"job": "x" * 300},
        headers=api.auth(tenant, "observer"),
    )
    assert long_job.status_code == 422
