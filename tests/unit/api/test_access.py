"""Who may call what: JWT battery, role matrix, cross-tenant matrix (all audited)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.security.audit import AuditFilter
from agentmesh.security.rbac import (
    OPERATION_PERMISSIONS,
    PLATFORM_OPERATIONS,
    Role,
    allowed,
)
from agentmesh.security.tokens import TokenConfig, TokenService
from tests.unit.api.catalog import (
    OBJECT_OPERATIONS,
    SECRET_MARK,
    fresh_agent,
    request_for,
    seed_tenant,
)
from tests.unit.api.conftest import SECRET, Api, make_settings, running

REST_OPERATIONS = sorted(op for op in OPERATION_PERMISSIONS if not op.startswith("ws:"))


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


def _claims(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sub": "mallory",
        "tenant_id": "acme",
        "roles": ["admin"],
        "iat": _now(),
        "exp": _now() + 600,
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
async def rs_api(tmp_path: Path) -> AsyncIterator[tuple[Api, bytes]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem_pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem_priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tokens = TokenService(
        TokenConfig(algorithm="RS256", private_key=pem_priv.decode(), public_key=pem_pub.decode())
    )
    app = create_app(
        make_settings(tmp_path),
        tokens=tokens,
        options=ApiOptions(rate_limit_enabled=False),
    )
    async for a in running(app):
        yield a, pem_pub


async def test_openapi_operations_all_use_the_permission_table(api: Api) -> None:
    spec = api.app.openapi()
    protected = {
        op["operationId"]
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and op.get("security")
    }
    assert protected == set(REST_OPERATIONS)


async def test_jwt_battery_hs256(api: Api) -> None:
    url = "/v1/tenants/acme/agents"
    good = api.token("acme", "admin")
    head, body, sig = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["roles"] = ["admin", "orchestrator"]
    battery = {
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
        "expired": jwt.encode(_claims(exp=_now() - 120, iat=_now() - 180), SECRET, "HS256"),
        "missing-exp": jwt.encode(_claims(exp=None), SECRET, "HS256"),
        "missing-tenant": jwt.encode(_claims(tenant_id=None), SECRET, "HS256"),
        "tampered": f"{head}.{_b64(payload)}.{sig}",
        "wrong-key": jwt.encode(_claims(), "k" * 64, "HS256"),
        "garbage": "not-a-token",
    }
    for name, token in battery.items():
        r = await api.client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name
        assert r.json()["code"] == "AUTH_INVALID", name
        assert r.headers["WWW-Authenticate"] == "Bearer"
    r = await api.client.get(url, headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 401
    r = await api.client.get(url, headers={"Authorization": f"Bearer {good}"})
    assert r.status_code == 200
    audit = await api.client.get(
        "/v1/tenants/acme/audit",
        params={"action": "auth_failure"},
        headers={"Authorization": f"Bearer {good}"},
    )
    assert audit.json()["pagination"]["total"] == len(battery) + 1


async def test_jwt_battery_rs256(rs_api: tuple[Api, bytes]) -> None:
    api, pem_pub = rs_api
    url = "/v1/tenants/acme/agents"
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64(_claims())
    sig = hmac.new(pem_pub, f"{header}.{body}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    r = await api.client.get(url, headers={"Authorization": f"Bearer {confused}"})
    assert r.status_code == 401
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = jwt.encode(_claims(), other, algorithm="RS256")
    r = await api.client.get(url, headers={"Authorization": f"Bearer {wrong}"})
    assert r.status_code == 401
    r = await api.client.get(url, headers=api.auth("acme", "observer"))
    assert r.status_code == 200


async def test_role_matrix(api: Api) -> None:
    """Every route x role matches the permission table (403 exactly when not allowed)."""
    seed = await seed_tenant(api, "acme")
    mismatches: list[str] = []
    for role in Role:
        headers = api.auth("acme", role.value, sub=f"user-{role.value}")
        for op in REST_OPERATIONS:
            if op in {"pause_agent", "resume_agent", "terminate_agent"}:
                seed.agent_id = await fresh_agent(api, "acme")
                if op == "resume_agent":
                    await api.client.post(
                        f"/v1/tenants/acme/agents/{seed.agent_id}/pause", headers=api.root
                    )
            method, path, body = request_for(op, seed)
            r = await api.client.request(method, path, json=body, headers=headers)
            expected = allowed([role], op) and op not in PLATFORM_OPERATIONS
            got = r.status_code not in (401, 403)
            if got != expected or r.status_code >= 500:
                mismatches.append(f"{role.value} {op}: {r.status_code} {r.text[:120]}")
            if not expected:
                assert r.json()["code"] == "FORBIDDEN"
    assert mismatches == []


async def test_cross_tenant_matrix(api: Api) -> None:
    """Tokens of tenant B (every role) get nothing of tenant A, and each try is audited."""
    victim = await seed_tenant(api, "tenant-a")
    await seed_tenant(api, "tenant-b")
    failures: list[str] = []
    tried = 0
    for role in Role:
        headers = api.auth("tenant-b", role.value, sub=f"b-{role.value}")
        for op in REST_OPERATIONS:
            if op in PLATFORM_OPERATIONS:
                continue
            method, path, body = request_for(op, victim)
            r = await api.client.request(method, path, json=body, headers=headers)
            tried += 1
            if r.status_code < 400 or r.status_code >= 500:
                failures.append(f"{role.value} {op}: {r.status_code}")
            for secret in (SECRET_MARK, "Agent of tenant-a", victim.task_id):
                if secret in r.text and secret not in path:
                    failures.append(f"{role.value} {op}: leaked {secret}")
            if op in OBJECT_OPERATIONS and r.status_code != 404:  # never 403 on objects
                failures.append(f"{role.value} {op}: {r.status_code} != 404")
            if role is Role.ADMIN and op not in OBJECT_OPERATIONS and r.status_code != 403:
                failures.append(f"admin {op}: {r.status_code} != 403")
            rid = r.headers["X-Request-ID"]
            flt = AuditFilter(tenant_id="tenant-a", request_id=rid)
            entries, _ = await api.ctx.audit.query(flt)
            if [e.action.value for e in entries] != ["unauthorized_access"]:
                failures.append(f"{role.value} {op}: not audited ({entries})")
    assert failures == []
    assert tried == len(Role) * (len(REST_OPERATIONS) - len(PLATFORM_OPERATIONS))
    # nothing of tenant A changed
    a = await api.client.get(f"/v1/tenants/tenant-a/agents/{victim.agent_id}", headers=api.root)
    assert a.json()["status"] == "AVAILABLE"
    tasks = await api.client.get("/v1/tenants/tenant-a/tasks", headers=api.root)
    assert tasks.json()["pagination"]["total"] == 2


async def test_platform_admin_reaches_every_tenant(api: Api) -> None:
    seed = await seed_tenant(api, "tenant-a")
    r = await api.client.get(f"/v1/tenants/tenant-a/agents/{seed.agent_id}", headers=api.root)
    assert r.status_code == 200
