"""Control-plane benchmark: GET agent and POST task next to a bare FastAPI route.

One uvicorn server (a subprocess, SQLite store, development level so no rate limit)
serves both the control plane and, under ``/raw``, a bare FastAPI app that bypasses all
of our middleware: ``/raw/...`` answers without any I/O, ``/raw/sql/...`` does the least a
durable API must do (one SQLite SELECT, or one INSERT committed in WAL mode, as our
store runs it). 32 concurrent clients drive each endpoint for a fixed time. Ratios:
throughput ours/raw; latency raw/ours (higher is better for both). Bounded (< 60 s).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CLIENTS = 32
PHASE_SECONDS = 3.0
SECRET = "bench-secret-" + "b" * 51

SERVER = r"""
import asyncio, json, sys, uuid, aiosqlite, uvicorn
from fastapi import FastAPI
from agentmesh.api.fastapi_app import create_app
from agentmesh.config import Settings

port = int(sys.argv[1])
ours = create_app(Settings())
raw = FastAPI()
sql = {"lock": asyncio.Lock()}

async def db():
    if "conn" not in sql:
        conn = await aiosqlite.connect(sys.argv[2], isolation_level=None)
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, doc TEXT)")
        await conn.execute("INSERT OR IGNORE INTO t VALUES ('bench-agent', '{}')")
        sql["conn"] = conn
    return sql["conn"]

@raw.get("/raw/sql/agents/{agent_id}")
async def raw_sql_get(agent_id: str) -> dict:
    conn = await db()
    async with conn.execute("SELECT doc FROM t WHERE id = ?", (agent_id,)) as cur:
        row = await cur.fetchone()
    return {"agent_id": agent_id, **json.loads(row[0])}

@raw.post("/raw/sql/tasks", status_code=201)
async def raw_sql_post(body: dict) -> dict:
    conn = await db()
    task_id = str(uuid.uuid4())
    async with sql["lock"]:
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute("INSERT INTO t VALUES (?, ?)", (task_id, json.dumps(body)))
        await conn.execute("COMMIT")
    return {"task_id": task_id, "status": "offered", **body}

@raw.get("/raw/agents/{agent_id}")
async def raw_get(agent_id: str) -> dict:
    return {"agent_id": agent_id, "status": "AVAILABLE"}

@raw.post("/raw/tasks", status_code=201)
async def raw_post(body: dict) -> dict:
    return {"task_id": "t", "status": "offered", **body}

async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith("/raw"):
        await raw(scope, receive, send)
    else:
        await ours(scope, receive, send)

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="auto")
"""


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def _drive(
    client: httpx.AsyncClient, method: str, url: str, body: Any, headers: dict[str, str]
) -> tuple[list[float], float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + PHASE_SECONDS

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at and len(latencies) < 200_000:
            t0 = time.perf_counter()
            r = await client.request(method, url, json=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            if r.status_code >= 400:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{errors} failed requests on {method} {url}")
    return latencies, len(latencies) / elapsed


def _figures(
    name: str, ours: tuple[list[float], float], raw: tuple[list[float], float]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for q, label in ((0.5, "p50"), (0.99, "p99")):
        o, r = _percentile(ours[0], q) * 1000, _percentile(raw[0], q) * 1000
        out[f"api_{name}_{label}_ms"] = {
            "value": round(o, 3),
            "unit": "ms",
            "baseline": round(r, 3),
            "ratio": round(r / o, 3) if o else 0.0,
        }
    out[f"api_{name}_rps"] = {
        "value": round(ours[1], 1),
        "unit": "req/s",
        "baseline": round(raw[1], 1),
        "ratio": round(ours[1] / raw[1], 3) if raw[1] else 0.0,
    }
    return out


async def run() -> dict[str, dict[str, Any]]:
    """Start the server, measure four endpoints, stop the server."""
    from cryptography.fernet import Fernet

    from agentmesh.runtime.embedded import free_port
    from agentmesh.security.tokens import TokenConfig, TokenService

    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="agentmesh-bench-api-"))
    env = {
        **os.environ,
        "JWT_SECRET_KEY": SECRET,
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
        "ENVIRONMENT": "development",
        "AGENTMESH_DATA_DIR": str(tmp),
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(port),
        str(tmp / "raw.db"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    token = TokenService(TokenConfig(secret=SECRET)).create("bench", "bench", ["admin"])
    auth = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bench server on port {port} did not start")
                await asyncio.sleep(0.1)
            body = {
                "agent_id": "bench-agent",
                "name": "bench agent",
                "capabilities": [{"name": "work"}],
            }
            r = await client.post("/v1/tenants/bench/agents", json=body, headers=auth)
            if r.status_code != 201:
                raise RuntimeError(f"seeding failed: {r.status_code} {r.text}")
            task = {"capability": "work", "payload": {"n": 1}}
            await _drive(
                client, "GET", "/v1/tenants/bench/agents/bench-agent", None, auth
            )  # warm-up
            get_ours = await _drive(
                client, "GET", "/v1/tenants/bench/agents/bench-agent", None, auth
            )
            get_raw = await _drive(client, "GET", "/raw/agents/bench-agent", None, auth)
            get_sql = await _drive(client, "GET", "/raw/sql/agents/bench-agent", None, auth)
            post_ours = await _drive(client, "POST", "/v1/tenants/bench/tasks", task, auth)
            post_raw = await _drive(client, "POST", "/raw/tasks", task, auth)
            post_sql = await _drive(client, "POST", "/raw/sql/tasks", task, auth)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return {
        **_figures("get_agent", get_ours, get_raw),
        **_figures("post_task", post_ours, post_raw),
        **_figures("get_agent_vs_sql", get_ours, get_sql),
        **_figures("post_task_vs_sql", post_ours, post_sql),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(run()), indent=2))
