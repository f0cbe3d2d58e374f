"""Row 7: clock skew. JWT leeway (``JWT_LEEWAY_SECONDS``, default 60) at its boundary on
the control plane, through an injected clock standing for a skewed host; event order
comes from store positions, never from (skewed) timestamps."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import jwt

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.config import Settings
from agentmesh.domain import AgentHeartbeatReceivedEvent
from agentmesh.domain.values import utcnow
from agentmesh.security.tokens import DEFAULT_LEEWAY_SECONDS, TokenConfig, TokenService
from agentmesh.store import NewEvent
from agentmesh.store.factory import create_event_store
from tests.chaos.conftest import ISSUER, SECRET, Report, chaos_settings
from tests.unit.api.conftest import running

ROW = "7 clock skew"


class SkewedClock:
    """A clock the test moves: ``time.time()`` plus ``offset`` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def token(tenant: str, *, exp: int, iat: int) -> str:
    claims = {
        "sub": "skewed",
        "tenant_id": tenant,
        "roles": ["observer"],
        "iat": iat,
        "exp": exp,
        "iss": ISSUER,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, SECRET, "HS256")


async def test_jwt_leeway_boundary_on_the_api(tmp_path: Path, report: Report) -> None:
    settings: Settings = chaos_settings(tmp_path)
    assert settings.jwt_leeway_seconds == DEFAULT_LEEWAY_SECONDS == 60
    clock = SkewedClock()
    tokens = TokenService(TokenConfig.from_settings(settings), clock=clock)
    app = create_app(
        settings.model_copy(update={"database_url": "memory://"}),
        tokens=tokens,
        options=ApiOptions(rate_limit_enabled=False),
    )
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    url = f"/v1/tenants/{tenant}/agents"
    now = int(time.time())
    expiring = token(tenant, exp=now, iat=now - 3600)
    future = token(tenant, exp=now + 7200, iat=now + 3600)
    cases = {
        # the verifying host's clock is past exp by 59 s / 61 s
        "exp + 59 s accepted": (expiring, 59, 200),
        "exp + 61 s refused": (expiring, 61, 401),
        # a token minted on a host whose clock runs ahead (iat in our future)
        "iat 59 s ahead accepted": (future, 3600 - 59, 200),
        "iat 61 s ahead refused": (future, 3600 - 61, 401),
        # +-5 min of skew is beyond the leeway either way
        "exp + 5 min refused": (expiring, 300, 401),
    }
    got: dict[str, int] = {}
    async for api in running(app):
        for name, (tok, offset, _) in cases.items():
            clock.offset = offset - (time.time() - now)  # relative to the minting second
            r = await api.client.get(url, headers={"Authorization": f"Bearer {tok}"})
            got[name] = r.status_code
    for name, (_, _, want) in cases.items():
        report(ROW, f"JWT leeway 60 s: {name}", str(got[name]), got[name] == want)
    assert got == {name: want for name, (_, _, want) in cases.items()}


async def test_order_comes_from_store_positions_not_timestamps(
    tmp_path: Path, report: Report
) -> None:
    """Events stamped by writers whose clocks are 5 min apart read back in commit order."""
    store = create_event_store(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")
    await store.connect()
    skews = [300.0, -300.0, 0.0, 299.0, -299.0]
    try:
        for i, skew in enumerate(skews):
            stamp = utcnow() + timedelta(seconds=skew)
            event = AgentHeartbeatReceivedEvent(
                aggregate_id=f"writer-{i}", tenant_id="acme", received_at=stamp, occurred_at=stamp
            )
            await store.append("acme", f"writer-{i}", 0, [NewEvent.of(event)])
        read = [e.stream_id for e in await store.read_all()]
    finally:
        await store.close()
    want = [f"writer-{i}" for i in range(len(skews))]
    report(
        ROW, "events of writers +-5 min apart read in commit order", str(read == want), read == want
    )
    assert read == want
