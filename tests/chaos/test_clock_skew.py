"""Row 7: clock skew. JWT leeway (``JWT_LEEWAY_SECONDS``, default 60) at its boundary on
the control plane, through an injected clock standing for a skewed host; event order
comes from store positions, never from (skewed) timestamps; agent processes whose wall
clocks run 5 min ahead and behind (libfaketime's ``faketime``) retry nothing early and
let nothing expire early; Fernet tokens sealed on a skewed host open."""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from agentmesh import Mesh, subjects
from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.config import Settings
from agentmesh.domain import AgentHeartbeatReceivedEvent
from agentmesh.domain.values import utcnow
from agentmesh.security.crypto import EncryptionService
from agentmesh.security.tokens import DEFAULT_LEEWAY_SECONDS, TokenConfig, TokenService
from agentmesh.store import NewEvent
from agentmesh.store.factory import create_event_store
from tests.chaos import handlers
from tests.chaos.conftest import ISSUER, SECRET, Report, chaos_settings, size
from tests.chaos.processes import ACK_WAIT, spawn, stop
from tests.helpers import fast_settings
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


def libfaketime() -> str:
    """Debian's libfaketime (``make faketime`` installs it)."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime is not installed: make faketime")
    return found[0]


def skewed(offset: str) -> dict[str, str]:
    """The environment of a process whose wall clock is ``offset`` off; its monotonic
    clock is not (a skewed host's NTP error does not move that either)."""
    return {"LD_PRELOAD": libfaketime(), "FAKETIME": offset, "DONT_FAKE_MONOTONIC": "1"}


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_workers_5_min_ahead_and_behind_run_each_task_once(
    nats_url: str, tmp_path: Path, report: Report
) -> None:
    """Two agent processes, their wall clocks 5 min ahead and behind (libfaketime), take
    tasks longer than the ack wait: no task is retried early (raw log: one start each),
    none expires before its own timeout, both workers take work."""
    n = size(200, 40)
    tenant = "t" + uuid.uuid4().hex[:8]
    log_path = str(tmp_path / "runs.log")
    ahead = spawn("ahead-1", tenant, nats_url, tmp_path, "skew", skewed("+5m"))
    behind = spawn("behind-1", tenant, nats_url, tmp_path, "skew", skewed("-5m"))
    client = Mesh(nats_url, tenant=tenant, settings=fast_settings(tmp_path))
    try:
        await client.start()
        await client.provision(subjects.task(tenant, "skew"), subjects.capability_group("skew"))
        up_by = time.monotonic() + 90  # both workers up: each has run a warm-up task
        while len({pid for _, _, pid, _ in handlers.read(log_path)}) < 2:
            assert time.monotonic() < up_by, "both skewed workers up"
            await asyncio.gather(*(client.run("skew", {}, timeout=60) for _ in range(8)))
        # each task outlasts the ack wait: only in-progress signals keep it from a retry
        hold = ACK_WAIT * 1.5
        ids = [
            await client.submit("skew", {"n": i, "sleep": hold}, timeout_seconds=30)
            for i in range(n)
        ]
        results = await asyncio.gather(
            *(client.wait_result(t, timeout=120) for t in ids), return_exceptions=True
        )
    finally:
        stop(ahead, behind)
        await client.stop()
    failed = [r for r in results if isinstance(r, BaseException)]
    now = time.time()
    runs = [r for r in handlers.read(log_path) if r[0] == "start" and r[1] in ids]
    starts = Counter(t for _, t, _, _ in runs)
    early = sum(c - 1 for c in starts.values())
    by_pid = Counter(pid for _, _, pid, _ in runs)
    # the handler logs its own clock: the skew is real in the workers
    stamps = {pid: stamp - now for _, _, pid, stamp in runs}
    skews = sorted(round(off / 60) for off in stamps.values())
    report(
        ROW,
        f"workers +-5 min (faketime): {n} tasks of {hold:g} s > ack wait, each run once",
        f"{early} early retries, {len(failed)} failed/expired, "
        f"ahead ran {by_pid[ahead.pid]}, behind ran {by_pid[behind.pid]}, "
        f"their clocks {skews} min off",
        not early and not failed and len(starts) == n and skews == [-5, 5],
    )
    assert not failed, failed[:3]
    assert early == 0
    assert len(starts) == n
    assert by_pid[ahead.pid] > 0
    assert by_pid[behind.pid] > 0
    assert skews == [-5, 5]


@pytest.mark.parametrize("offset", ["+5m", "-5m"])
def test_fernet_tokens_of_a_skewed_host_decrypt(offset: str, report: Report) -> None:
    """A Fernet token sealed on a host 5 min off opens here: decryption takes no TTL, so
    the token's timestamp (the sealer's clock) is never compared with this clock."""
    key = EncryptionService.generate_key()
    code = (
        "import sys; from agentmesh.security.crypto import EncryptionService; "
        "print(EncryptionService(sys.argv[1]).encrypt(b'sealed'))"
    )
    sealed = subprocess.run(
        [sys.executable, "-c", code, key],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
        env={**os.environ, **skewed(offset)},
    ).stdout.strip()
    opened = EncryptionService(key).decrypt(sealed)
    report(ROW, f"Fernet token sealed {offset} off opens here", repr(opened), opened == b"sealed")
    assert opened == b"sealed"
