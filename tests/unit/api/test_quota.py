"""``max_messages_per_hour``: a submission beyond the tenant's hour is a 429 with
Retry-After, and nothing of it is written."""

from __future__ import annotations

import time

import pytest

from agentmesh.commands.quota import HOUR, QuotaWindow
from agentmesh.errors import QuotaExceeded
from tests.unit.api.conftest import Api


async def test_a_tenant_over_its_hourly_messages_gets_429_with_retry_after(api: Api) -> None:
    made = await api.client.post(
        "/v1/tenants",
        json={"tenant_id": "tiny", "name": "Tiny", "max_messages_per_hour": 3},
        headers=api.root,
    )
    assert made.status_code == 201, made.text
    headers = api.auth("tiny")
    for i in range(3):
        r = await api.client.post(
            "/v1/tenants/tiny/tasks",
            json={"capability": "work", "payload": {"i": i}},
            headers=headers,
        )
        assert r.status_code == 201, r.text
    over = await api.client.post(
        "/v1/tenants/tiny/tasks",
        json={"capability": "work", "task_id": "one-too-many"},
        headers=headers,
    )
    assert over.status_code == 429, over.text
    assert over.json()["code"] == "QUOTA_EXCEEDED"
    assert 1 <= int(over.headers["Retry-After"]) <= HOUR + 60
    missing = await api.client.get("/v1/tenants/tiny/tasks/one-too-many", headers=headers)
    assert missing.status_code == 404  # nothing half-written
    listed = await api.client.get("/v1/tenants/tiny/tasks", headers=headers)
    assert listed.json()["pagination"]["total"] == 3


async def test_the_window_slides_and_is_seeded_from_the_read_model(api: Api) -> None:
    await api.client.post(
        "/v1/tenants", json={"tenant_id": "seeded", "name": "Seeded"}, headers=api.root
    )
    r = await api.client.post(
        "/v1/tenants/seeded/tasks", json={"capability": "work"}, headers=api.auth("seeded")
    )
    assert r.status_code == 201
    await api.ctx.caught_up()
    window = QuotaWindow(api.ctx.persistence.read_models)  # a fresh process: seeded
    now = time.time()
    await window.take("seeded", 2, now=now)
    with pytest.raises(QuotaExceeded) as exc:
        await window.take("seeded", 2, now=now)
    assert exc.value.retry_after <= HOUR + 60
    await window.take("seeded", 2, now=now + HOUR + 61)  # an hour later the slots are free
