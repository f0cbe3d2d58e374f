"""``POST /v1/tenants/{t}/tokens/{jti}/revoke``: the token is refused by REST at once (and
recorded, so every control plane on the store refuses it after its next reload)."""

from __future__ import annotations

import uuid

from agentmesh.security.audit import AuditAction, AuditFilter
from tests.unit.api.conftest import Api


async def test_a_revoked_token_is_refused_by_rest_at_once(api: Api) -> None:
    tenant = "r" + uuid.uuid4().hex[:8]
    made = await api.client.post(
        "/v1/tenants", json={"tenant_id": tenant, "name": tenant}, headers=api.root
    )
    assert made.status_code == 201, made.text
    victim = api.token(tenant, "observer", sub="leaky")
    jti = api.ctx.tokens.verify(victim).token_id
    assert jti
    headers = {"Authorization": f"Bearer {victim}"}
    assert (
        await api.client.get(f"/v1/tenants/{tenant}/agents", headers=headers)
    ).status_code == 200
    r = await api.client.post(
        f"/v1/tenants/{tenant}/tokens/{jti}/revoke", headers=api.auth(tenant, "admin")
    )
    assert r.status_code == 200, r.text
    assert r.json()["disconnected"] == 0  # no bus callout in this plane
    refused = await api.client.get(f"/v1/tenants/{tenant}/agents", headers=headers)
    assert refused.status_code == 401
    entries, _ = await api.ctx.audit.query(
        AuditFilter(action=AuditAction.SECRET_REVOKED.value), limit=100
    )
    assert jti in {e.resource_id for e in entries}
