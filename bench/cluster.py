"""Capacity of the scale-out topology (``python -m bench.run cluster``).

On a local 3-node NATS cluster (``NatsCluster``, JetStream):

* JetStream publish cost: durable publishes/s (each awaited) into an R3 stream next to
  an R1 stream of the same cluster (baseline R1; ratio R3/R1);
* tasks/s through 1, 2 and 4 ``agentmesh agent start`` processes (echo handler, R3
  streams): the whole run and per agent process (baseline: 1 process);
* control-plane requests/s per replica, measured from outside by ``wrk`` (GET a task,
  POST a task) on one replica alone, then on two replicas of a ``LocalCluster`` at once
  (PostgreSQL scratch database; baseline: the single replica);
* the acceptance run at full size: ``tests/e2e/test_cluster.py`` with 5,000 tasks
  (SIGKILL of a NATS node and a replica, then a rolling restart) and
  ``tests/integration/cluster/test_replicas.py`` with 5,000 tasks (two relays, projections
  equal a rebuild), seconds it took.

Every loop is bounded in count and time; everything listens on 127.0.0.1 only. This
machine has 2 cores shared by every process of the run, so scaling figures are what two
cores give, not what more machines would.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from agentmesh import Mesh
from agentmesh.cli.cluster import ClusterSpec, LocalCluster
from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.runtime.nats_cluster import NatsCluster
from agentmesh.transports.nats import NatsTransport
from bench.core import entry

Result = dict[str, dict[str, Any]]
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PUBLISHES = int(os.environ.get("BENCH_CLUSTER_PUBLISHES", "2000"))
TASKS = int(os.environ.get("BENCH_CLUSTER_TASKS", "2000"))
ACCEPTANCE_TASKS = int(os.environ.get("BENCH_CLUSTER_ACCEPTANCE_TASKS", "5000"))
WRK_SECONDS = 5
PG_ADMIN = os.environ.get(
    "AGENTMESH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def bench_publish(url: str) -> Result:
    rates: dict[int, float] = {}
    for replicas in (1, 3):
        t = NatsTransport(url, replicas=replicas)
        await t.connect()
        try:
            subject = f"am.b{uuid.uuid4().hex[:8]}.task.work"
            await t.publish(subject, Envelope.create("task.offered"), durable=True)  # stream
            start = time.perf_counter()
            for i in range(PUBLISHES):
                await t.publish(subject, Envelope.create("task.offered", {"n": i}), durable=True)
            rates[replicas] = PUBLISHES / (time.perf_counter() - start)
        finally:
            await t.close()
    return {
        "cluster_js_publish_r1": entry(rates[1], "publishes/s", None),
        "cluster_js_publish_r3": entry(rates[3], "publishes/s", rates[1]),
    }


def _start_agents(count: int, tenant: str, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                BIN / "agentmesh",
                "agent",
                "start",
                f"worker-{i}",
                "--capabilities",
                "work",
                "--tenant",
                tenant,
                "--max-concurrent",
                "32",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(count)
    ]


async def _agents_run(url: str, root: Path, processes: int) -> float:
    """Tasks/s of ``processes`` agent processes over :data:`TASKS` tasks."""
    tenant = "b" + uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        "NATS_URL": url,
        "AGENTMESH_DATA_DIR": str(root / tenant),
        "LOG_LEVEL": "WARNING",
        "AGENTMESH_HEARTBEAT_INTERVAL": "0.5",
    }
    env.pop("DATABASE_URL", None)
    mesh = Mesh(url, tenant=tenant, settings=Settings(agentmesh_data_dir=root / tenant))
    done = asyncio.Event()
    completed = 0

    async def seen(_: Envelope) -> None:
        nonlocal completed
        completed += 1
        if completed >= TASKS:
            done.set()

    procs = _start_agents(processes, tenant, env)
    try:
        async with mesh:
            deadline = time.monotonic() + 60
            while len(mesh.registry.agents(tenant)) < processes:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{processes} agent processes did not join in 60 s")
                await asyncio.sleep(0.1)
            await mesh.on_event("task.completed", seen)
            start = time.perf_counter()
            for chunk in range(0, TASKS, 200):
                await asyncio.gather(
                    *(mesh.submit("work", {"n": i}) for i in range(chunk, min(chunk + 200, TASKS)))
                )
            await asyncio.wait_for(done.wait(), 300)
            return TASKS / (time.perf_counter() - start)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


async def bench_agents(url: str, root: Path) -> Result:
    rates = {k: await _agents_run(url, root, k) for k in (1, 2, 4)}
    out: Result = {}
    for k, rate in rates.items():
        out[f"cluster_tasks_{k}_agent_processes"] = entry(
            rate, "tasks/s", rates[1] if k > 1 else None
        )
        out[f"cluster_tasks_per_agent_process_{k}"] = entry(
            rate / k, "tasks/s", rates[1] if k > 1 else None
        )
    return out


def _wrk(url: str, token: str, script: Path | None = None) -> subprocess.Popen[str]:
    argv = ["wrk", "-t1", "-c16", f"-d{WRK_SECONDS}s", "-H", f"Authorization: Bearer {token}"]
    argv += (["-s", str(script)] if script else []) + [url]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rate(proc: subprocess.Popen[str]) -> float:
    out, _ = proc.communicate(timeout=WRK_SECONDS + 60)
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no rate: {out[-300:]}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx is not None:
        raise RuntimeError(f"wrk got {non2xx.group(1)} error responses")
    return float(found.group(1))


def _token(env: dict[str, str], tenant: str) -> str:
    return subprocess.run(
        [str(BIN / "agentmesh"), "token", "create", "-t", tenant, "-r", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


def bench_replicas(root: Path) -> Result:
    """GET/POST req/s per control-plane replica: one alone, then two at once."""
    import asyncpg

    name = "am_bench_" + uuid.uuid4().hex[:10]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    spec = ClusterSpec(size=3, replicas=2, agents=0, port=18800, extra_env={"LOG_LEVEL": "WARNING"})
    cluster = LocalCluster(
        spec, root / "replicas", Settings(agentmesh_data_dir=root / "keys", database_url=url)
    )
    try:
        cluster.start()
        tenant = "bench"
        system = _token(cluster.base_env, "_system")
        r = httpx.post(
            f"{cluster.api_urls[0]}/v1/tenants",
            json={"tenant_id": tenant, "name": "bench"},
            headers={"Authorization": f"Bearer {system}"},
            timeout=30,
        )
        r.raise_for_status()
        token = _token(cluster.base_env, tenant)
        made = httpx.post(
            f"{cluster.api_urls[0]}/v1/tenants/{tenant}/tasks",
            json={"capability": "work", "payload": {"n": 1}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        made.raise_for_status()
        task = made.json()["task_id"]
        post = root / "post.lua"
        post.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            'wrk.body = \'{"capability": "work", "payload": {"n": 1}}\'\n'
        )
        out: Result = {}
        for kind, path, script in (
            ("get_task", f"/v1/tenants/{tenant}/tasks/{task}", None),
            ("post_task", f"/v1/tenants/{tenant}/tasks", post),
        ):
            alone = _rate(_wrk(cluster.api_urls[0] + path, token, script))
            both = [_wrk(u + path, token, script) for u in cluster.api_urls]
            rates = [_rate(p) for p in both]
            out[f"cluster_api_{kind}_1_replica"] = entry(alone, "req/s", None)
            out[f"cluster_api_{kind}_2_replicas_total"] = entry(sum(rates), "req/s", alone)
            out[f"cluster_api_{kind}_per_replica_of_2"] = entry(sum(rates) / 2, "req/s", alone)
        return out
    finally:
        cluster.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def bench_acceptance() -> Result:
    """The acceptance at full size (5,000 tasks): seconds for the three scenarios."""
    start = time.perf_counter()
    out = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "--timeout", "1200"),
            *("tests/e2e/test_cluster.py", "tests/integration/cluster/test_replicas.py"),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "AGENTMESH_CLUSTER_TASKS": str(ACCEPTANCE_TASKS),
            "AGENTMESH_REPLICAS_TASKS": str(ACCEPTANCE_TASKS),
        },
        capture_output=True,
        text=True,
        timeout=1500,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {ACCEPTANCE_TASKS}-task acceptance failed: {out.stdout[-2000:]}")
    seconds = time.perf_counter() - start
    return {
        f"cluster_acceptance_{ACCEPTANCE_TASKS}_tasks_x3_seconds": entry(seconds, "s", None),
    }


async def run() -> Result:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    out: Result = {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as d:
        root = Path(d)
        nats = NatsCluster(root / "nats", client_base=None, route_base=None, http_base=None)
        await asyncio.to_thread(nats.start)
        try:
            out.update(await bench_publish(nats.url))
            out.update(await bench_agents(nats.url, root))
        finally:
            await asyncio.to_thread(nats.stop)
        out.update(await asyncio.to_thread(bench_replicas, root))
    if os.environ.get("BENCH_CLUSTER_ACCEPTANCE", "1") != "0":
        out.update(await asyncio.to_thread(bench_acceptance))
    return out
