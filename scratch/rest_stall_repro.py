"""The REST POST stall repro (issue 23): a LocalCluster (3 NATS, REPLICAS planes, AGENTS agents), N tasks POSTed on replica TARGET by 8 clients; per-POST and GET latency; on a stall (STALL s) pg_stat_activity and py-spy dumps to /tmp/c23-dumps.txt; STOPS=k SIGSTOPs the other replica k times for 3 s. Bounded: N tasks, 500 s. Not part of the suite (scratch, not linted)."""
import asyncio, concurrent.futures, os, subprocess, sys, threading, time, tempfile
from pathlib import Path
import httpx
sys.path.insert(0, "/work/wt-cluster23")
from agentmesh.cli.cluster import ClusterSpec, LocalCluster
from agentmesh.config import Settings
from tests.contract.store_fixtures import _db_url, create_pg_database, drop_pg_database
from tests.e2e.test_product import ROOT
from tests.helpers import cli_token, unique_tenant

N = int(os.environ.get("N", "1500"))
AGENTS = int(os.environ.get("AGENTS", "3"))
REPLICAS = int(os.environ.get("REPLICAS", "2"))
TARGET = int(os.environ.get("TARGET", "0"))
tmp = Path(tempfile.mkdtemp(prefix="c23-"))
name = asyncio.run(create_pg_database())
url = _db_url(name).replace("postgresql://", "postgresql+asyncpg://", 1)
tenant = unique_tenant()
runs = tmp / "runs.txt"; runs.touch()
spec = ClusterSpec(size=3, replicas=REPLICAS, agents=AGENTS, port=18700, capabilities="count", tenant=tenant,
    handler="tests.e2e.cluster_handler:count",
    extra_env={"CLUSTER_RUNS_FILE": str(runs), "PYTHONPATH": str(ROOT), "AGENTMESH_HEARTBEAT_INTERVAL": "0.5",
               "AGENTMESH_ACK_WAIT": "30", "LOG_LEVEL": "WARNING"})
c = LocalCluster(spec, tmp / "cluster", Settings(agentmesh_data_dir=tmp / "cli", database_url=url))
lat = []
print("root", tmp, flush=True)
dumps = []
try:
    c.start()
    sys_tok = cli_token(c.base_env, "_system")
    r = httpx.post(f"{c.api_urls[0]}/v1/tenants", json={"tenant_id": tenant, "name": "x"},
                   headers={"Authorization": f"Bearer {sys_tok}"}, timeout=30)
    assert r.status_code == 201, r.text
    tok = cli_token(c.base_env, tenant)
    client = httpx.Client(base_url=c.api_urls[TARGET], headers={"Authorization": f"Bearer {tok}"}, timeout=120)
    inflight = {}
    lock = threading.Lock()
    stop = threading.Event()
    pid = c.planes[TARGET].proc.pid
    pids = [p.proc.pid for p in c.planes]
    def watch():
        last = 0.0
        while not stop.is_set():
            time.sleep(0.2)
            now = time.monotonic()
            with lock:
                oldest = min(inflight.values(), default=now)
            if now - oldest > float(os.environ.get("STALL", "1.5")) and now - last > 2.0 and len(dumps) < 12:
                last = now
                import asyncpg
                from agentmesh.store.postgres import asyncpg_dsn
                async def act():
                    conn = await asyncpg.connect(asyncpg_dsn(url))
                    try:
                        return await conn.fetch("SELECT pid, client_port, state, wait_event_type, wait_event, now()-xact_start AS xa, left(query, 90) q FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY xact_start NULLS LAST")
                    finally:
                        await conn.close()
                rows = asyncio.run(act())
                dumps.append(f"--- pg at stall {now-oldest:.1f}s\n" + "\n".join(str(tuple(r)) for r in rows))
                for pp in pids:
                    out = subprocess.run([str(ROOT / ".venv/bin/py-spy"), "dump", "--pid", str(pp)],
                                     capture_output=True, text=True, timeout=30)
                    dumps.append(f"--- stall {now-oldest:.1f}s pid {pp} target {pid}\n" + out.stdout + out.stderr)
    w = threading.Thread(target=watch)
    w.start()
    if os.environ.get("STOPS"):
        pids = []
    stops = int(os.environ.get("STOPS", "0"))
    stop_marks = []
    def stopper():
        import signal as sg
        other = c.planes[1 - TARGET].proc.pid
        for k in range(stops):
            time.sleep(4.0)
            if stop.is_set():
                return
            os.kill(other, sg.SIGSTOP)
            stop_marks.append(time.monotonic() - t0)
            time.sleep(3.0)
            os.kill(other, sg.SIGCONT)
    st = threading.Thread(target=stopper, daemon=True)
    t0 = time.monotonic()
    gets = []
    def getter():
        while not stop.is_set():
            s0 = time.monotonic()
            client.get(f"/v1/tenants/{tenant}/tasks", params={"limit": 1})
            gets.append((s0 - t0, time.monotonic() - s0))
            time.sleep(0.1)
    gt = threading.Thread(target=getter, daemon=True); gt.start()
    if stops:
        st.start()
    def one(i):
        s = time.monotonic()
        with lock: inflight[i] = s
        r = client.post(f"/v1/tenants/{tenant}/tasks", json={"capability": "count", "payload": {"n": i}})
        e = time.monotonic()
        with lock: del inflight[i]
        assert r.status_code == 201, r.text
        lat.append((s - t0, e - s))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(one, i) for i in range(N)]:
            f.result()
    wall = time.monotonic() - t0
    stop.set()
    if w.is_alive(): w.join()
    gl = sorted(l for _, l in gets)
    print(f"GET n={len(gl)} p99={gl[int(len(gl)*0.99)]*1000:.0f}ms max={gl[-1]*1000:.0f}ms")
    print("stops at", [round(x, 1) for x in stop_marks])
    ls = sorted(l for _, l in lat)
    print(f"N={N} wall={wall:.1f}s rate={N/wall:.0f}/s p50={ls[len(ls)//2]*1000:.0f}ms p99={ls[int(len(ls)*0.99)]*1000:.0f}ms max={ls[-1]*1000:.0f}ms")
    slow = [(round(s,1), round(l,2)) for s, l in lat if l > 1.0]
    print("slow(>1s):", len(slow), slow[:40])
    Path("/tmp/c23-dumps.txt").write_text("\n".join(dumps))
finally:
    c.stop()
    asyncio.run(drop_pg_database(name))
