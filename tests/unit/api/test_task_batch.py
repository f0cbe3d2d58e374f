"""``POST /tasks:batch``: up to 1,000 tasks in one call, all or nothing, each validated as
``POST /tasks`` validates one, counted against the quota and audited."""

from __future__ import annotations

import uuid

from agentmesh.security.audit import AuditAction, AuditFilter
from tests.unit.api.conftest import Api


async def _tenant(api: Api, **kw: object) -> str:
    tenant = "b" + uuid.uuid4().hex[:8]
    made = await api.client.post(
        "/v1/tenants", json={"tenant_id": tenant, "name": tenant, **kw}, headers=api.root
    )
    assert made.status_code == 201, made.text
    return tenant


async def test_a_batch_submits_every_task_readable_at_once(api: Api) -> None:
    tenant = await _tenant(api)
    tasks = [{"capability": "work", "payload": {"i": i}} for i in range(1000)]
    tasks[3] = {"capability": "work", "task_id": "chosen-id", "priority": "high"}
    r = await api.client.post(
        f"/v1/tenants/{tenant}/tasks:batch", json={"tasks": tasks}, headers=api.auth(tenant)
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["count"] == 1000
    assert len(set(body["task_ids"])) == 1000
    assert body["task_ids"][3] == "chosen-id"
    one = await api.client.get(f"/v1/tenants/{tenant}/tasks/chosen-id", headers=api.auth(tenant))
    assert one.status_code == 200
    assert one.json()["status"] == "offered"
    listed = await api.client.get(f"/v1/tenants/{tenant}/tasks", headers=api.auth(tenant))
    assert listed.json()["pagination"]["total"] == 1000
    audit, _ = await api.ctx.audit.query(
        AuditFilter(tenant_id=tenant, action=AuditAction.TASK_ASSIGNED), limit=2000
    )
    batch = {e.resource_id for e in audit if e.details.get("operation") == "submit_batch"}
    assert batch == set(body["task_ids"])
    assert await api.ctx.persistence.store.outbox_pending_count() >= 1000  # offers go out
    walked: list[str] = []
    params: dict[str, str | int] = {"limit": 300}
    for _ in range(10):  # bounded
        page = await api.client.get(
            f"/v1/tenants/{tenant}/tasks", params=params, headers=api.auth(tenant)
        )
        assert page.status_code == 200, page.text
        walked += [t["task_id"] for t in page.json()["tasks"]]
        if page.json()["next_cursor"] is None:
            break
        params = {"limit": 300, "cursor": page.json()["next_cursor"]}
    assert sorted(walked) == sorted(body["task_ids"])
    offset = await api.client.get(
        f"/v1/tenants/{tenant}/tasks",
        params={"limit": 300, "offset": 900},
        headers=api.auth(tenant),
    )
    assert [t["task_id"] for t in offset.json()["tasks"]] == walked[900:]
    assert offset.json()["next_cursor"] is None
    both = await api.client.get(
        f"/v1/tenants/{tenant}/tasks", params={"offset": 1, "cursor": "x"}, headers=api.auth(tenant)
    )
    assert both.status_code == 422


async def test_one_bad_task_refuses_the_whole_batch(api: Api) -> None:
    tenant = await _tenant(api)
    auth = api.auth(tenant)
    url = f"/v1/tenants/{tenant}/tasks:batch"
    head = await api.ctx.persistence.store.head()
    bad = await api.client.post(
        url,
        json={
            "tasks": [
                {"capability": "work", "task_id": "fine"},
                {"capability": "work", "max_attempts": 99},
            ]
        },
        headers=auth,
    )
    assert bad.status_code == 422, bad.text
    assert "task 1" in bad.json()["error"]
    twice = await api.client.post(
        url,
        json={
            "tasks": [
                {"capability": "work", "task_id": "x1"},
                {"capability": "work", "task_id": "x1"},
            ]
        },
        headers=auth,
    )
    assert twice.status_code == 422
    assert twice.json()["code"] == "BATCH_DUPLICATE"
    assert (await api.client.post(url, json={"tasks": []}, headers=auth)).status_code == 422
    over = [{"capability": "work"}] * 1001
    assert (await api.client.post(url, json={"tasks": over}, headers=auth)).status_code == 422
    assert await api.ctx.persistence.store.head() == head  # nothing written
    taken = await api.client.post(
        f"/v1/tenants/{tenant}/tasks", json={"capability": "work", "task_id": "taken"}, headers=auth
    )
    assert taken.status_code == 201
    clash = await api.client.post(
        url,
        json={
            "tasks": [
                {"capability": "work", "task_id": "new-one"},
                {"capability": "work", "task_id": "taken"},
            ]
        },
        headers=auth,
    )
    assert clash.status_code == 409
    assert clash.json()["code"] == "TASK_EXISTS"
    gone = await api.client.get(f"/v1/tenants/{tenant}/tasks/new-one", headers=auth)
    assert gone.status_code == 404


async def test_a_batch_that_does_not_fit_the_quota_writes_nothing(api: Api) -> None:
    tenant = await _tenant(api, max_messages_per_hour=10)
    auth = api.auth(tenant)
    url = f"/v1/tenants/{tenant}/tasks:batch"
    ok = await api.client.post(url, json={"tasks": [{"capability": "w"}] * 8}, headers=auth)
    assert ok.status_code == 201, ok.text
    over = await api.client.post(url, json={"tasks": [{"capability": "w"}] * 3}, headers=auth)
    assert over.status_code == 429
    assert over.json()["code"] == "QUOTA_EXCEEDED"
    listed = await api.client.get(f"/v1/tenants/{tenant}/tasks", headers=auth)
    assert listed.json()["pagination"]["total"] == 8
    fits = await api.client.post(url, json={"tasks": [{"capability": "w"}] * 2}, headers=auth)
    assert fits.status_code == 201, fits.text


async def test_a_batch_needs_the_task_write_permission(api: Api) -> None:
    tenant = await _tenant(api)
    r = await api.client.post(
        f"/v1/tenants/{tenant}/tasks:batch",
        json={"tasks": [{"capability": "work"}]},
        headers=api.auth(tenant, "observer"),
    )
    assert r.status_code == 403


async def test_a_task_that_needs_approval_refuses_the_batch(api: Api) -> None:
    tenant = await _tenant(api)
    tasks = [{"capability": "work"}, {"capability": "work", "requires_approval": True}]
    r = await api.client.post(
        f"/v1/tenants/{tenant}/tasks:batch", json={"tasks": tasks}, headers=api.auth(tenant)
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "BATCH_NEEDS_APPROVAL"
    assert "tasks[1] needs approval" in r.json()["error"]
    listed = await api.client.get(f"/v1/tenants/{tenant}/tasks", headers=api.auth(tenant))
    assert listed.json()["pagination"]["total"] == 0  # nothing written
