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
  (1,000 a call, 2 clients sending 3 each), next to the goal of 10,000 tasks/s;
  ``api_post_batch_cpu_ms_per_task``: the server's CPU time per task of a batch, next to
  the 0.1 ms that 10,000 tasks/s on one core allows.

Each pair also has ``..._cpu_ms``: the server process's CPU time per request (all its
threads, from ``/proc``), ours next to the baseline's. On a shared, busy machine the
throughput measures the share of the cores the server got as much as its code; CPU time
per request measures the work.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

CONNECTIONS = 32
PHASE_SECONDS = 2
ROUNDS = 3
BATCH = 1000
BATCH_GOAL = 10_000.0
BATCH_CLIENTS = 2
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
    total = re.search(r"^\s*(\d+) requests in", out, re.M)
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
        "requests": float(total.group(1)) if total else 0.0,
        "timeouts": float(errors.group(1)) if errors else 0.0,
    }


def _lua(path: Path, body: Any) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads; Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str,
    token: str,
    *,
    script: Path | None = None,
    connections: int = CONNECTIONS,
    seconds: int = PHASE_SECONDS,
    pid: int | None = None,
) -> dict[str, float]:
    """One bounded ``wrk`` run against ``url``; failed requests fail the benchmark.

    With the server's ``pid``, also ``cpu_ms``: the server's CPU time per request, which
    a busy shared machine disturbs far less than throughput (it measures work done, not
    the share of the cores the server got)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "20s"]
    cmd += ["-H", f"Authorization: Bearer {token}"]
    if script is not None:
        cmd += ["-s", str(script)]
    before = cpu_seconds(pid) if pid is not None else 0.0
    done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 30)
    result = parse_wrk(done.stdout)
    if pid is not None and result["requests"]:
        result["cpu_ms"] = (cpu_seconds(pid) - before) * 1000 / result["requests"]
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
        ("cpu_ms", "ms", False),
    ):
        if not all(key in r for r in (*ours, *raw)):
            continue
        o = statistics.median(r[key] for r in ours)
        b = statistics.median(r[key] for r in raw)
        turns = [
            (x[key] / y[key] if better_high else y[key] / x[key]) if x[key] and y[key] else 0.0
            for x, y in zip(ours, raw, strict=True)
        ]
        label = key if key in ("rps", "cpu_ms") else f"{key}_ms"
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


def batch_load(base: str, token: str, tasks: list[dict[str, Any]], pid: int) -> tuple[float, float]:
    """``BATCH_CLIENTS`` clients each sending ``ROUNDS`` batches, one after the other:
    tasks/s into the store over the whole run, and the server's CPU ms per task (every
    batch is answered inside the window: no unfinished work is counted)."""
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{base}/v1/tenants/bench/tasks:batch"

    def client_run() -> None:
        with httpx.Client(timeout=120) as client:
            for _ in range(ROUNDS):
                r = client.post(url, json={"tasks": tasks}, headers=auth)
                if r.status_code != 201:
                    raise RuntimeError(f"batch failed: {r.status_code} {r.text[:200]}")

    before, started = cpu_seconds(pid), time.monotonic()
    with ThreadPoolExecutor(BATCH_CLIENTS) as pool:
        for f in [pool.submit(client_run) for _ in range(BATCH_CLIENTS)]:
            f.result()
    elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - before
    n = BATCH_CLIENTS * ROUNDS * len(tasks)
    return n / elapsed, cpu * 1000 / n


def _turns(
    *urls_scripts: tuple[str, Path | None], token: str, pid: int
) -> list[list[dict[str, float]]]:
    runs: list[list[dict[str, float]]] = [[] for _ in urls_scripts]
    for _ in range(ROUNDS):
        for i, (url, script) in enumerate(urls_scripts):
            runs[i].append(wrk(url, token, script=script, pid=pid))
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
        agent = f"{base}/v1/tenants/bench/agents/bench-agent"
        wrk(agent, token)  # warm-up
        get_ours, get_raw, get_sql = await asyncio.to_thread(
            _turns,
            (agent, None),
            (f"{base}/raw/agents/bench-agent", None),
            (f"{base}/raw/sql/agents/bench-agent", None),
            token=token,
            pid=proc.pid,
        )
        post_ours, post_sql, post_raw = await asyncio.to_thread(
            _turns,
            (f"{base}/v1/tenants/bench/tasks", post),
            (f"{base}/raw/sql/tasks", post),
            (f"{base}/raw/tasks", post),
            token=token,
            pid=proc.pid,
        )
        per_s, cpu_per_task = await asyncio.to_thread(batch_load, base, token, tasks, proc.pid)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
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
        "api_post_batch_cpu_ms_per_task": {
            "value": round(cpu_per_task, 4),
            "unit": "ms",
            "baseline": round(1000 / BATCH_GOAL, 4),
            "ratio": round(1000 / BATCH_GOAL / cpu_per_task, 3) if cpu_per_task else 0.0,
        },
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
