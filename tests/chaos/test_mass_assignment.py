"""Row 13: mass assignment. Generated bodies of every writing operation with extra
fields (``tenant_id``, ``role``, ``owner``, ``id``, ``status``) -> 422, and reading every
object back shows no change."""

from __future__ import annotations

import random
from typing import Any

from agentmesh.security.rbac import PLATFORM_OPERATIONS
from tests.chaos.conftest import Report, size
from tests.unit.api.catalog import Seed, request_for, seed_tenant
from tests.unit.api.conftest import Api

ROW = "13 mass assignment"
EXTRAS = ("tenant_id", "role", "owner", "id", "status")
VALUES: tuple[Any, ...] = ("admin", "intruder", "COMPLETED", "_system", 0, True, None, {"a": 1}, [])
WRITES = (
    "create_tenant",
    "create_agent",
    "pause_agent",
    "resume_agent",
    "terminate_agent",
    "submit_task",
    "cancel_task",
    "retry_task",
    "publish_message",
    "put_safety_policy",
    "agent_feedback",
    "release_agent",
)


def declared(api: Api, operation: str) -> set[str]:
    """The body fields ``operation`` declares (from the OpenAPI document)."""
    spec = api.app.openapi()
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation:
                content = op.get("requestBody", {}).get("content", {})
                schema = content.get("application/json", {}).get("schema", {})
                while "$ref" in schema or "anyOf" in schema:
                    if "anyOf" in schema:
                        schema = next((s for s in schema["anyOf"] if s.get("type") != "null"), {})
                        continue
                    name = schema["$ref"].rsplit("/", 1)[-1]
                    schema = spec["components"]["schemas"][name]
                return set(schema.get("properties", {}))
    raise AssertionError(f"no operation {operation}")


def generated(rng: random.Random, base: dict[str, Any] | None, known: set[str]) -> dict[str, Any]:
    body = dict(base or {})
    free = [k for k in EXTRAS if k not in body and k not in known]
    for key in rng.sample(free, rng.randint(1, len(free))):
        body[key] = rng.choice(VALUES)
    return body


async def snapshot(api: Api, seed: Seed) -> dict[str, Any]:
    """Everything the writes could touch, as the platform admin reads it back."""
    t = f"/v1/tenants/{seed.tenant}"
    out: dict[str, Any] = {}
    for path in (
        "/v1/tenants?limit=1000",
        f"{t}/agents?limit=1000",
        f"{t}/tasks?limit=1000",
        f"{t}/messages/{seed.message_id}",
        f"{t}/safety/policy",
    ):
        r = await api.client.get(path, headers=api.root)
        assert r.status_code == 200, (path, r.text)
        out[path] = {k: v for k, v in r.json().items() if k not in ("timestamp", "request_id")}
    return out


async def test_extra_fields_are_422_and_change_nothing(api: Api, report: Report) -> None:
    seed = await seed_tenant(api, "owner")
    before = await snapshot(api, seed)
    rng = random.Random(19)
    known = {op: declared(api, op) for op in WRITES}
    total = size(10_000, 240)
    statuses: dict[str, dict[int, int]] = {}
    for i in range(total):
        op = WRITES[i % len(WRITES)]
        method, path, base = request_for(op, seed)
        headers = api.root if op in PLATFORM_OPERATIONS else api.auth("owner", "admin")
        body = generated(rng, base, known[op])
        r = await api.client.request(method, path, json=body, headers=headers)
        per_op = statuses.setdefault(op, {})
        per_op[r.status_code] = per_op.get(r.status_code, 0) + 1
    await api.ctx.caught_up()
    unchanged = await snapshot(api, seed) == before
    wrong = {op: codes for op, codes in statuses.items() if set(codes) != {422}}
    report(
        ROW,
        f"{total} bodies with extra fields over {len(WRITES)} writing routes -> 422",
        f"{sum(c.get(422, 0) for c in statuses.values())} x 422; other: {wrong or 'none'}",
        not wrong,
    )
    report(ROW, "no state change (read back)", f"unchanged {unchanged}", unchanged)
    assert wrong == {}
    assert unchanged
