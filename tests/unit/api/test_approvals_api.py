"""REST approvals on the ASGI app: list, show, approve (with edits), reject; the 409/422
refusals write nothing; who may decide; the audit trail of each step."""

from __future__ import annotations

from typing import Any

from agentmesh.security.audit import AuditFilter
from tests.unit.api.conftest import Api

T = "/v1/tenants/acme"


async def _submit(api: Api, payload: dict[str, Any], **kw: Any) -> str:
    r = await api.client.post(
        f"{T}/tasks",
        json={"capability": "pay", "payload": payload, "requires_approval": True, **kw},
        headers=api.auth("acme", "orchestrator"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending_approval"
    return str(r.json()["task_id"])


async def test_approve_reject_and_the_refusals(api: Api) -> None:
    made = await api.client.post(
        "/v1/tenants", json={"tenant_id": "acme", "name": "Acme"}, headers=api.root
    )
    assert made.status_code == 201
    approver = api.auth("acme", "approver", sub="alice")
    a = await _submit(api, {"amount": 5})
    b = await _submit(api, {"amount": 900})
    r = await api.client.get(f"{T}/approvals", headers=approver)
    assert r.status_code == 200
    assert {x["task_id"] for x in r.json()["items"]} == {a, b}
    shown = (await api.client.get(f"{T}/approvals/{a}__a1", headers=approver)).json()
    assert shown["arguments"] == {"amount": 5}
    assert shown["task"]["status"] == "pending_approval"
    assert len(shown["args_sha256"]) == 64

    # refusals: nothing written
    observer = api.auth("acme", "observer")
    r = await api.client.post(f"{T}/approvals/{a}__a1/approve", headers=observer)
    assert r.status_code == 403
    r = await api.client.post(
        f"{T}/approvals/{a}__a1/approve", json={"args_sha256": "0" * 64}, headers=approver
    )
    assert r.status_code == 409
    assert r.json()["code"] == "APPROVAL_ARGS_CHANGED"
    r = await api.client.post(
        f"{T}/approvals/{a}__a1/approve", json={"arguments": [1, 2]}, headers=approver
    )
    assert r.status_code == 422
    r = await api.client.post(f"{T}/approvals/{a}__a9/approve", headers=approver)
    assert r.status_code == 404
    task = (await api.client.get(f"{T}/tasks/{a}", headers=approver)).json()
    assert task["status"] == "pending_approval"

    r = await api.client.post(
        f"{T}/approvals/{a}__a1/approve",
        json={"comment": "fine, but less", "arguments": {"amount": 4}},
        headers=approver,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    assert r.json()["edits"] == {"amount": 4}
    await api.ctx.caught_up()
    task = (await api.client.get(f"{T}/tasks/{a}", headers=approver)).json()
    assert task["status"] == "offered"
    assert task["payload"] == {"amount": 4}
    r = await api.client.post(f"{T}/approvals/{a}__a1/approve", headers=approver)
    assert r.status_code == 409
    assert r.json()["code"] == "APPROVAL_DECIDED"

    r = await api.client.post(
        f"{T}/approvals/{b}__a1/reject", json={"comment": "too much"}, headers=approver
    )
    assert r.status_code == 200
    await api.ctx.caught_up()
    task = (await api.client.get(f"{T}/tasks/{b}", headers=approver)).json()
    assert task["status"] == "rejected"
    assert "too much" in task["error"]
    assert (await api.client.get(f"{T}/approvals", headers=approver)).json()["total"] == 0

    entries, _ = await api.ctx.audit.query(AuditFilter(tenant_id="acme"), limit=500)
    seen = [(e.action.value, e.actor, e.status.value) for e in entries]
    assert ("approval_edited", "alice", "success") in seen
    assert ("approval_decided", "alice", "denied") in seen
    assert sum(1 for s in seen if s[0] == "approval_requested") == 2
    refused = sorted(
        str(e.details.get("refused"))
        for e in entries
        if e.action.value == "approval_decided" and e.status.value == "failure"
    )
    assert refused == ["APPROVAL_ARGS_CHANGED", "APPROVAL_DECIDED"]  # the 409s, audited
