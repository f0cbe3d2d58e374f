"""Row 11: BOLA. Every route with an object id, every role of another tenant: 404 (never
403), the same answer as a genuinely absent object, nothing leaked or changed, and each
attempt audited under the victim tenant."""

from __future__ import annotations

import itertools
import uuid

from agentmesh.security.audit import AuditFilter
from agentmesh.security.rbac import Role
from tests.chaos.conftest import Report, size
from tests.unit.api.catalog import OBJECT_OPERATIONS, SECRET_MARK, Seed, request_for, seed_tenant
from tests.unit.api.conftest import Api

ROW = "11 BOLA"


def absent(seed: Seed) -> Seed:
    """The same tenant with object ids that do not exist."""
    n = uuid.uuid4().hex[:8]
    return Seed(seed.tenant, f"ghost-{n}", str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))


async def state(api: Api, seed: Seed) -> list[object]:
    """The victim's objects as its own admin reads them (timestamps of reads excluded)."""
    t = f"/v1/tenants/{seed.tenant}"
    out: list[object] = []
    for path in (
        f"{t}/agents/{seed.agent_id}",
        f"{t}/tasks/{seed.task_id}",
        f"{t}/tasks/{seed.dead_task_id}",
        f"{t}/messages/{seed.message_id}",
    ):
        r = await api.client.get(path, headers=api.root)
        assert r.status_code == 200, r.text
        out.append({k: v for k, v in r.json().items() if k not in ("timestamp", "request_id")})
    return out


async def test_every_object_route_is_404_for_every_role_of_another_tenant(
    api: Api, report: Report
) -> None:
    victim = await seed_tenant(api, "victim")
    await seed_tenant(api, "attacker")
    ops = sorted(OBJECT_OPERATIONS)
    before = await state(api, victim)
    total = size(1000, len(Role) * len(ops))
    statuses: dict[int, int] = {}
    leaks: list[str] = []
    unaudited: list[str] = []
    mismatched: list[str] = []
    combos = itertools.cycle(itertools.product(Role, ops))
    for i in range(total):
        role, op = next(combos)
        headers = api.auth("attacker", role.value, sub=f"mallory-{i % 7}")
        method, path, body = request_for(op, victim)
        r = await api.client.request(method, path, json=body, headers=headers)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        for secret in (SECRET_MARK, "Agent of victim"):
            if secret in r.text:
                leaks.append(f"{role.value} {op}")
        if r.status_code != 404:
            mismatched.append(f"{role.value} {op}: {r.status_code}")
        # once per pair: the answer equals a missing object's (a token id names nothing
        # stored: revoking an unknown one is not an error, so it has no "missing" answer)
        if i < len(Role) * len(ops) and op != "revoke_token":
            g_method, g_path, g_body = request_for(op, absent(victim))
            ghost = await api.client.request(g_method, g_path, json=g_body, headers=api.root)
            if ghost.status_code != 404 or ghost.json()["code"] != r.json().get("code"):
                mismatched.append(f"{op}: {r.json().get('code')} vs {ghost.json().get('code')}")
        flt = AuditFilter(tenant_id="victim", request_id=r.headers["X-Request-ID"])
        entries, _ = await api.ctx.audit.query(flt)
        if [e.action.value for e in entries] != ["unauthorized_access"]:
            unaudited.append(f"{role.value} {op}")
    unchanged = await state(api, victim) == before
    report(
        ROW,
        f"{total} cross-tenant requests, {len(Role)} roles x {len(ops)} object routes: all 404",
        ", ".join(f"{n} x {code}" for code, n in sorted(statuses.items())),
        statuses == {404: total},
    )
    report(
        ROW,
        "same answer as an absent object, nothing leaked, nothing changed",
        f"{len(mismatched)} mismatches, {len(leaks)} leaks, unchanged {unchanged}",
        not mismatched and not leaks and unchanged,
    )
    report(ROW, "every attempt audited", f"{total - len(unaudited)}/{total}", not unaudited)
    assert statuses == {404: total}
    assert mismatched == []
    assert leaks == []
    assert unaudited == []
    assert unchanged
