"""Control-plane benchmark under an external load generator (``wrk``, 32 connections).

One uvicorn server (``bench.api_server``: SQLite store, development level so no rate
limit) serves the control plane and, under ``/raw``, bare FastAPI routes bypassing all of
our middleware. The machine is shared, so each of ours and its baseline run in turns
(``ROUNDS`` times, ``PHASE_SECONDS`` each) and the figures are the medians of the turns;
the ratio is the median of the per-turn ratios (ours/raw throughput; raw/ours latency).

* ``api_get_agent``: ``GET /v1/tenants/bench/agents/{id}`` next to a bare route (no I/O),
  and ``..._vs_sql`` next to a bare route doing one SQLite SELECT;
* ``api_post_task``: ``POST /v1/tenants/bench/tasks`` next to a bare route committing one
  SQLite row (``..._vs_sql``) and one doing no I/O;
* ``api_post_batch_tasks_per_s``: tasks/s into the store through ``POST /tasks:batch``
  (1,000 a call, 2 connections), next to the goal of 10,000 tasks/s.

``make bench`` installs ``wrk``. Bounded: about a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CONNECTIONS = 32
PHASE_SECONDS = 2
ROUNDS = 3
BATCH = 1000
BATCH_GOAL = 10_000.0
BATCH_SECONDS = 6
SECRET = "bench-secret-" + "b" * 51
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if m is None:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) and non-2xx count of one ``wrk --latency`` run."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?timeout (\d+)", out)
    if rps is None or p50 is None or p99 is None:
        raise RuntimeError(f"unreadable wrk output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
        "bad": float(bad.group(1)) if bad else 0.0,
        "timeouts": float(errors.group(1)) if errors else 0.0,
    }


def _lua(path: Path, body: Any) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def wrk(
    url: str,
    token: str,
    *,
    script: Path | None = None,
    connections: int = CONNECTIONS,
    seconds: int = PHASE_SECONDS,
) -> dict[str, float]:
    """One bounded ``wrk`` run against ``url``; failed requests fail the benchmark."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "20s"]
    cmd += ["-H", f"Authorization: Bearer {token}"]
    if script is not None:
        cmd += ["-s", str(script)]
    done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 30)
    result = parse_wrk(done.stdout)
    if result["bad"]:
        raise RuntimeError(f"{int(result['bad'])} failed requests on {url}")
    return result


def pair(
    name: str, ours: list[dict[str, float]], raw: list[dict[str, float]]
) -> dict[str, dict[str, Any]]:
    """Median figures of the turns and the median of the per-turn ratios."""
    out: dict[str, dict[str, Any]] = {}
    for key, unit, better_high in (
        ("rps", "req/s", True),
        ("p50", "ms", False),
        ("p99", "ms", False),
    ):
        o = statistics.median(r[key] for r in ours)
        b = statistics.median(r[key] for r in raw)
        turns = [
            (x[key] / y[key] if better_high else y[key] / x[key]) if x[key] and y[key] else 0.0
            for x, y in zip(ours, raw, strict=True)
        ]
        label = "rps" if key == "rps" else f"{key}_ms"
        out[f"api_{name}_{label}"] = {
            "value": round(o, 3),
            "unit": unit,
            "baseline": round(b, 3),
            "ratio": round(statistics.median(turns), 3),
        }
    return out


async def _start(port: int, tmp: Path) -> asyncio.subprocess.Process:
    from cryptography.fernet import Fernet

    env = {
        **os.environ,
        "JWT_SECRET_KEY": SECRET,
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
        "ENVIRONMENT": "development",
        "AGENTMESH_DATA_DIR": str(tmp),
        "LOG_LEVEL": "WARNING",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.api_server",
        str(port),
        str(tmp / "raw.db"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _ready(proc: asyncio.subprocess.Process, base: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                if (await client.get("/health/ready")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bench server at {base} did not start")
            await asyncio.sleep(0.1)
        body = {
            "agent_id": "bench-agent",
            "name": "bench agent",
            "capabilities": [{"name": "work"}],
        }
        r = await client.post("/v1/tenants/bench/agents", json=body, headers=auth)
        if r.status_code != 201:
            raise RuntimeError(f"seeding failed: {r.status_code} {r.text}")


def _turns(*urls_scripts: tuple[str, Path | None], token: str) -> list[list[dict[str, float]]]:
    runs: list[list[dict[str, float]]] = [[] for _ in urls_scripts]
    for _ in range(ROUNDS):
        for i, (url, script) in enumerate(urls_scripts):
            runs[i].append(wrk(url, token, script=script))
    return runs


async def run() -> dict[str, dict[str, Any]]:
    """Start the server, drive each endpoint and its baselines in turns, stop it."""
    from agentmesh.runtime.embedded import free_port
    from agentmesh.security.tokens import TokenConfig, TokenService

    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (make bench installs it: apt-get install wrk)")
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="agentmesh-bench-api-"))
    base = f"http://127.0.0.1:{port}"
    token = TokenService(TokenConfig(secret=SECRET)).create("bench", "bench", ["admin"])
    proc = await _start(port, tmp)
    try:
        await _ready(proc, base, token)
        post = _lua(tmp / "post.lua", {"capability": "work", "payload": {"n": 1}})
        tasks = [{"capability": "work", "payload": {"n": i}} for i in range(BATCH)]
        batch = _lua(tmp / "batch.lua", {"tasks": tasks})
        agent = f"{base}/v1/tenants/bench/agents/bench-agent"
        wrk(agent, token)  # warm-up
        get_ours, get_raw, get_sql = await asyncio.to_thread(
            _turns,
            (agent, None),
            (f"{base}/raw/agents/bench-agent", None),
            (f"{base}/raw/sql/agents/bench-agent", None),
            token=token,
        )
        post_ours, post_sql, post_raw = await asyncio.to_thread(
            _turns,
            (f"{base}/v1/tenants/bench/tasks", post),
            (f"{base}/raw/sql/tasks", post),
            (f"{base}/raw/tasks", post),
            token=token,
        )
        batches = [
            await asyncio.to_thread(
                wrk,
                f"{base}/v1/tenants/bench/tasks:batch",
                token,
                script=batch,
                connections=2,
                seconds=BATCH_SECONDS,
            )
            for _ in range(ROUNDS)
        ]
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    per_s = statistics.median(b["rps"] for b in batches) * BATCH
    return {
        **pair("get_agent", get_ours, get_raw),
        **pair("get_agent_vs_sql", get_ours, get_sql),
        **pair("post_task_vs_sql", post_ours, post_sql),
        **pair("post_task", post_ours, post_raw),
        "api_post_batch_tasks_per_s": {
            "value": round(per_s, 1),
            "unit": "tasks/s",
            "baseline": BATCH_GOAL,
            "ratio": round(per_s / BATCH_GOAL, 3),
        },
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
