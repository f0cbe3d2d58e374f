"""Row 12: hostile tokens against a live control plane -> 401 on REST and WebSocket, and
refused by a token service holding the store's deny list (what every process checks),
each attempt audited; revocation through the real CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agentmesh.errors import Unauthorized
from agentmesh.security.revocation import DenyList
from agentmesh.security.tokens import TokenService, token_service_from_settings
from agentmesh.store.audit_log import audit_store_for
from tests.chaos.conftest import ISSUER, SECRET, Plane, Report
from tests.helpers import until

pytestmark = pytest.mark.e2e
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")
ROW = "12 JWT abuse"


def cli(plane: Plane, *args: str) -> Any:
    done = subprocess.run(
        [AGENTMESH, *args, "--json"],
        env=plane.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def forged(claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(claims, SECRET, "HS256", headers=headers or None)


def claims(tenant: str, **kw: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "mallory",
        "tenant_id": tenant,
        "roles": ["admin"],
        "iat": now,
        "exp": now + 600,
        "iss": ISSUER,
        "jti": uuid.uuid4().hex,
    }
    base.update(kw)
    return base


async def ws_close_code(url: str, timeout: float = 10.0) -> int:
    """The close code the server ends a socket opened at ``url`` with (data ignored)."""
    async with connect(url) as ws:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await ws.recv()
                except ConnectionClosed as exc:
                    return exc.rcvd.code if exc.rcvd is not None else -1


async def router_refuses(plane: Plane, token: str, tenant: str) -> bool:
    """A token service of another process, with the deny list loaded from the plane's
    audit trail, refuses ``token``."""
    deny = DenyList()
    audit = audit_store_for(plane.settings.database_url)
    await audit.connect()
    try:
        await deny.load(audit)
    finally:
        await audit.close()
    svc = token_service_from_settings(plane.settings)
    tokens = TokenService(svc.config, deny=deny)
    try:
        claims = tokens.verify(token)
    except Unauthorized:
        return True
    return claims.tenant_id != tenant


async def test_hostile_tokens_are_401_everywhere_and_audited(plane: Plane, report: Report) -> None:
    live = plane.live
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    url = f"{live.url}/v1/tenants/{tenant}/agents"
    good = live.token(tenant, "admin")
    hostile = {
        "unknown kid": forged(claims(tenant), kid="0123456789abcdef"),
        "path-traversal kid": forged(claims(tenant), kid="../../../../etc/passwd"),
        "wrong iss alone": forged(claims(tenant, iss="https://evil.example")),
    }
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(url, headers={"Authorization": f"Bearer {good}"})).status_code == 200
        statuses = {
            name: (await http.get(url, headers={"Authorization": f"Bearer {t}"})).status_code
            for name, t in hostile.items()
        }
        ws_codes = {
            name: await ws_close_code(f"{live.ws_url}?token={t}") for name, t in hostile.items()
        }
        bus = {name: await router_refuses(plane, t, tenant) for name, t in hostile.items()}

        # a revoked token: open socket first, then revoke through the CLI
        victim = live.token(tenant, "observer", sub="victim")
        victim_h = {"Authorization": f"Bearer {victim}"}
        assert (await http.get(url, headers=victim_h)).status_code == 200
        async with connect(f"{live.ws_url}?token={victim}") as ws:
            assert json.loads(await ws.recv())["type"] == "connect"
            revoked_at = time.monotonic()
            cli(plane, "token", "revoke", "--token", victim)
            async with asyncio.timeout(60):
                while True:
                    try:
                        await ws.recv()
                    except ConnectionClosed as exc:
                        ws_revoked_code = exc.rcvd.code if exc.rcvd is not None else -1
                        break
            ws_close_seconds = time.monotonic() - revoked_at

        async def refused() -> bool:
            return (await http.get(url, headers=victim_h)).status_code == 401

        await until(refused, 30, "the revoked token refused by REST")
        rest_revoked_seconds = time.monotonic() - revoked_at
        statuses["revoked token"] = (await http.get(url, headers=victim_h)).status_code
        ws_codes["revoked token"] = await ws_close_code(f"{live.ws_url}?token={victim}")
        bus["revoked token"] = await router_refuses(plane, victim, tenant)
        still_good = (await http.get(url, headers={"Authorization": f"Bearer {good}"})).status_code

        # a revoked key: every token it signed, even one minted after, is refused
        cli(plane, "token", "revoke", "--key")
        fresh = live.token(tenant, "admin")

        async def key_refused() -> bool:
            r = await http.get(url, headers={"Authorization": f"Bearer {fresh}"})
            return r.status_code == 401

        await until(key_refused, 30, "the revoked key refused by REST")
        statuses["revoked key"] = 401
        ws_codes["revoked key"] = await ws_close_code(f"{live.ws_url}?token={fresh}")
        bus["revoked key"] = await router_refuses(plane, fresh, tenant)

    page = cli(
        plane, "audit", "list", "--tenant", tenant, "--action", "auth_failure", "--limit", "1000"
    )
    reasons = [e["details"].get("reason", "") for e in page["entries"]]
    audited = {
        "unknown kid": any("unknown signing key" in r for r in reasons),
        "path-traversal kid": any("malformed kid" in r for r in reasons),
        "wrong iss alone": any("issuer" in r.lower() for r in reasons),
        "revoked token": any(r == "token revoked" for r in reasons),
        "revoked key": any(r == "signing key revoked" for r in reasons),
    }
    for name in statuses:
        ok = statuses[name] == 401 and ws_codes[name] == 1008 and bus[name] and audited[name]
        report(
            ROW,
            f"{name}: REST 401, WS 1008, deny list refuses, audited",
            f"REST {statuses[name]}, WS {ws_codes[name]}, deny list "
            f"{'refused' if bus[name] else 'ACCEPTED'}, audited {audited[name]}",
            ok,
        )
    report(
        "15 WS revocation",
        "open session closed <= 60 s after revocation",
        f"closed {ws_revoked_code} after {ws_close_seconds:.1f} s "
        f"(REST refused after {rest_revoked_seconds:.1f} s)",
        ws_revoked_code == 1008 and ws_close_seconds <= 60,
    )
    assert statuses == dict.fromkeys(statuses, 401)
    assert ws_codes == dict.fromkeys(ws_codes, 1008)
    assert all(bus.values()), bus
    assert all(audited.values()), (audited, sorted(set(reasons)))
    assert still_good == 200  # revoking one token leaves the others alone
    assert ws_revoked_code == 1008
    assert ws_close_seconds <= 60
