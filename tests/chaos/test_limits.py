"""Rows 14 and 15: the limits at their real defaults against a live control plane.

Body 1 MiB, page size 1000, 1000 requests a minute per client and tenant, WebSocket
frames 64 KiB, 100 sockets per tenant (5 per user), sessions closed at token expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agentmesh.api.options import DEFAULT_RATE_LIMIT, ApiOptions, WsLimits
from agentmesh.runtime.embedded import free_port
from agentmesh.security.tokens import TokenService, token_service_from_settings
from tests.chaos.conftest import FULL, Plane, Report, chaos_settings, cli_env, size
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
QUOTA = DEFAULT_RATE_LIMIT
SERVER = """
import sys, uvicorn
from agentmesh.api.fastapi_app import create_app
uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
NOISY = """
import asyncio, sys
host, port, path, auth, k = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
REQUEST = (
    f"GET {path} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nAuthorization: {auth}\\r\\n\\r\\n"
).encode()
async def one(stop, codes):
    reader, writer = await asyncio.open_connection(host, port)
    while not stop.is_set():
        writer.write(REQUEST)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) != b"\\r\\n":
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        codes.append(status)
    writer.close()
async def main():
    print("ready", flush=True)
    while (await asyncio.to_thread(sys.stdin.readline)).strip() == "burst":
        stop, codes = asyncio.Event(), []
        runs = [asyncio.create_task(one(stop, codes)) for _ in range(k)]
        await asyncio.to_thread(sys.stdin.readline)
        stop.set()
        await asyncio.gather(*runs)
        print(" ".join(map(str, codes)), flush=True)
asyncio.run(main())
"""
"""The noisy tenant's load generator, in its own process: each burst (``burst`` then
``stop`` on stdin; the status codes on stdout) opens ``k`` keep-alive connections that
send one precomputed request after another until it stops (connections are not kept
between bursts: the server closes idle ones after 5 s). Raw sockets, not an HTTP client
library: the generator must cost far less CPU than the server it floods (an httpx client
spends about 1 ms of CPU a request, twice what the server spends refusing it), or on a
2-core machine it measures its own weight on the quiet tenant's latency."""


NOISY_CONNECTIONS = 16


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def closed_with(ws: ClientConnection, timeout: float = 10.0) -> int:
    async with asyncio.timeout(timeout):
        while True:
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd is not None else -1


async def greeted(ws: ClientConnection) -> None:
    assert json.loads(await ws.recv())["type"] == "connect"
    assert json.loads(await ws.recv())["type"] == "auth_response"


async def declared_body_status(base: str, path: str, headers: dict[str, str], length: int) -> int:
    """The status of a POST declaring ``length`` bytes with ``Expect: 100-continue``: the
    server answers before the body is sent (as a careful client sends it), so a refusal
    is never lost to a connection reset while uploading."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}Content-Length: {length}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        return int(status_line.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_body_and_page_limits(plane: Plane, report: Report) -> None:
    live, t = plane.live, tenant()
    url = f"{live.url}/v1/tenants/{t}/agents"
    h = {**live.auth(t, "admin"), "content-type": "application/json"}
    limit = ApiOptions().body_limit_bytes
    over_status = await declared_body_status(live.url, f"/v1/tenants/{t}/agents", h, limit + 1)
    async with httpx.AsyncClient(timeout=30) as http:
        at = await http.post(url, content=b" " * limit, headers=h)
        page_over = await http.get(url, params={"limit": 1001}, headers=h)
        page_max = await http.get(url, params={"limit": 1000}, headers=h)
    report(
        "14 limits",
        f"body {limit + 1} B -> 413, {limit} B passes the limit",
        f"{over_status} / {at.status_code}",
        over_status == 413 and at.status_code != 413,
    )
    report(
        "14 limits",
        "page size bounded: limit=1001 refused (422), 1000 served",
        f"{page_over.status_code} / {page_max.status_code}",
        page_over.status_code == 422 and page_max.status_code == 200,
    )
    assert limit == MIB
    assert over_status == 413
    assert at.status_code == 422  # read and parsed: blank JSON is a validation error
    assert page_over.status_code == 422
    assert page_max.status_code == 200


@pytest.mark.timeout(600 if FULL else 120)  # full size: ~100 s, more on a busy machine
async def test_tenant_burst_is_429_while_another_tenant_keeps_its_latency(
    tmp_path: Path, report: Report
) -> None:
    # the control plane in its own process, so the clients do not share its interpreter
    settings = chaos_settings(tmp_path)
    port = free_port()
    with (tmp_path / "server.log").open("wb") as log:
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SERVER,
            str(port),
            env={**cli_env(settings), "API_HOST": "127.0.0.1"},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200,
            60,
            "the control plane process answering",
        )
        await burst_against(
            f"http://127.0.0.1:{port}", token_service_from_settings(settings), report
        )
    finally:
        server.terminate()
        await server.wait()


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


@dataclass
class Trial:
    """One trial: the noisy tenant's status codes (its quota, then its bursts) and the
    quiet tenant's latencies with the noisy one idle (baseline) and bursting (during)."""

    used: list[int]
    codes: list[int]
    baseline: list[float]
    during: list[float]
    burst_seconds: float

    @property
    def ratio(self) -> float:
        return p99(self.during) / p99(self.baseline)

    @property
    def rate(self) -> float:
        """The noisy tenant's refused requests a second while bursting."""
        return len(self.codes) / self.burst_seconds


class Noisy:
    """The :data:`NOISY` generator process, started (and idle) before anything is measured."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, auth: str) -> Noisy:
        host, rest = url.removeprefix("http://").split(":", 1)
        port, path = rest.split("/", 1)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            NOISY,
            host,
            port,
            f"/{path}",
            auth,
            str(NOISY_CONNECTIONS),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        noisy = cls(proc)
        assert await noisy._line() == "ready"
        return noisy

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode().strip()

    def _say(self, what: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{what}\n".encode())

    def burst(self) -> None:
        self._say("burst")

    async def stop(self) -> list[int]:
        self._say("stop")
        return [int(c) for c in (await self._line()).split()]

    async def close(self) -> None:
        if self.proc.returncode is None:
            self._say("quit")
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def burst_trial(http: httpx.AsyncClient, base: str, tokens: TokenService) -> Trial:
    """A fresh noisy tenant spends its quota, then its generator (its own process,
    started before anything is measured) bursts in rounds. Each round a fresh quiet
    tenant (one tenant's probes would exhaust its own quota) is probed one request at
    a time with the generator idle (baseline), then bursting (during): whatever else
    loads the machine weighs on both samples alike."""
    rounds, probes = size(10, 2), size(100, 50)  # per round and side
    noisy = tenant()
    noisy_url = f"{base}/v1/tenants/{noisy}/agents"
    noisy_auth = f"Bearer {tokens.create('prober', noisy, ['observer'])}"
    used = [
        (await http.get(noisy_url, headers={"Authorization": noisy_auth})).status_code
        for _ in range(QUOTA)
    ]
    baseline: list[float] = []
    during: list[float] = []
    codes: list[int] = []
    bursting = 0.0
    generator = await Noisy.start(noisy_url, noisy_auth)
    try:
        for _ in range(rounds):
            quiet = tenant()
            url = f"{base}/v1/tenants/{quiet}/agents"
            h = {"Authorization": f"Bearer {tokens.create('prober', quiet, ['observer'])}"}

            async def timed(url: str = url, h: dict[str, str] = h) -> float:
                started = time.perf_counter()
                r = await http.get(url, headers=h)
                assert r.status_code == 200
                return time.perf_counter() - started

            for _ in range(10):  # warm-up: a tenant's first requests are not measured
                await timed()
            baseline += [await timed() for _ in range(probes)]
            generator.burst()
            started = time.perf_counter()
            during += [await timed() for _ in range(probes)]
            codes += await generator.stop()
            bursting += time.perf_counter() - started
    finally:
        await generator.close()
    return Trial(used, codes, baseline, during, bursting)


async def burst_against(base: str, tokens: TokenService, report: Report) -> None:
    """The burst row: every trial's 429s, and the median over trials of the quiet
    tenant's p99 ratio (one trial in the suite, five under ``make chaos``)."""
    async with httpx.AsyncClient(timeout=30) as http:
        trials = [await burst_trial(http, base, tokens) for _ in range(size(5, 1))]
    least = size(500, 40)  # refused requests each trial must have sent at least
    refused = all(
        t.used.count(200) == QUOTA and t.codes.count(429) == len(t.codes) >= least for t in trials
    )
    report(
        "14 limits",
        f"a tenant over its quota ({QUOTA}/60 s) -> every further request 429",
        ", ".join(
            f"{t.used.count(200)} x 200 then {t.codes.count(429)}/{len(t.codes)} x 429"
            f" ({t.rate:.0f}/s)"
            for t in trials
        ),
        refused,
    )
    ratio = statistics.median(t.ratio for t in trials)
    report(
        "14 limits",
        "other tenant's p99 during the refused burst <= 2x its baseline",
        f"median of {len(trials)} trials {ratio:.2f}x ("
        + ", ".join(
            f"{p99(t.during) * 1000:.1f} vs {p99(t.baseline) * 1000:.1f} ms" for t in trials
        )
        + f"; {len(trials[0].during)} + {len(trials[0].baseline)} probes a trial)",
        ratio <= 2,
    )
    assert refused
    if FULL:  # the latency target is judged at full size only (make chaos): the reduced
        # run on a shared 2-core machine measures other jobs as much as this server
        assert ratio <= 2


async def test_websocket_frame_cap_tenant_cap_and_expiry(plane: Plane, report: Report) -> None:
    live, t = plane.live, tenant()
    limits = WsLimits()
    frame = limits.max_frame_bytes
    # a ping padded to exactly the limit is served; one byte more closes 1009
    pad = frame - len(json.dumps({"type": "ping", "message_id": "m", "pad": ""}))
    exact = json.dumps({"type": "ping", "message_id": "m", "pad": "x" * pad})
    assert len(exact) == frame
    async with connect(f"{live.ws_url}?token={live.token(t)}", max_size=None) as ws:
        await greeted(ws)
        await ws.send(exact)
        pong = json.loads(await ws.recv())
        await ws.send(exact + " ")
        too_big = await closed_with(ws)
    report(
        "14 limits",
        f"WS frame of {frame} B served, {frame + 1} B -> close 1009",
        f"{pong['type']} / {too_big}",
        pong["type"] == "pong" and too_big == 1009,
    )
    assert pong["type"] == "pong"
    assert too_big == 1009

    cap = limits.per_tenant
    users = -(-cap // limits.per_user)
    sockets: list[ClientConnection] = []
    try:
        for u in range(users):
            token = live.token(t, "observer", sub=f"user-{u}")
            for _ in range(limits.per_user):
                if len(sockets) < cap:
                    ws = await connect(f"{live.ws_url}?token={token}")
                    await greeted(ws)
                    sockets.append(ws)
        extra_token = live.token(t, "observer", sub="one-more")
        async with connect(f"{live.ws_url}?token={extra_token}") as ws:
            over_cap = await closed_with(ws)
        other = tenant()
        async with connect(f"{live.ws_url}?token={live.token(other)}") as ws:
            await greeted(ws)
            other_ok = True
    finally:
        await asyncio.gather(*(s.close() for s in sockets))
    report(
        "14 limits",
        f"per-tenant WS cap {cap}: socket {cap + 1} -> 4001, other tenant served",
        f"{len(sockets)} open, next closed {over_cap}, other tenant served {other_ok}",
        len(sockets) == cap and over_cap == 4001 and other_ok,
    )
    assert len(sockets) == cap
    assert over_cap == 4001

    lifetime = 3.0
    short = live.tokens.create("brief", t, ["observer"], expires_in=timedelta(seconds=lifetime))
    expires_at = live.tokens.verify(short).expires_at.timestamp()
    async with connect(f"{live.ws_url}?token={short}") as ws:
        await greeted(ws)
        code = await closed_with(ws, timeout=70)
        late = time.time() - expires_at
    report(
        "15 WS expiry",
        "session closed <= 60 s after its token's expiry",
        f"closed {code} {late:.1f} s after expiry",
        code == 1008 and late <= 60,
    )
    assert code == 1008
    assert late <= 60
