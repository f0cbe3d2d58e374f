"""A slow agent process joining a steady workload raises a task-latency anomaly: a
``system_event`` on /ws within 10 s, an audit entry and agentmesh_anomalies_total."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from agentmesh.runtime.embedded import free_port
from tests.e2e.slow_handler import DELAY
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")


def run_cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [AGENTMESH, *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


def spawn(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [AGENTMESH, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def steady(completed: Any) -> None:
    """Wait (60 s at most) until the steady workload filled the latency window (30)."""
    async with asyncio.timeout(60):
        while await completed() < 45:  # noqa: ASYNC110 (polling the REST API)
            await asyncio.sleep(0.2)


async def test_a_slow_agent_in_a_steady_workload_raises_an_anomaly_on_ws(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.5",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        PROMETHEUS_ENABLED="false",
    )
    env.pop("NATS_URL", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs = [spawn(env, tmp_path / "up.log", "up", "--port", str(port))]
    try:
        wait_until(
            lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 30, "the API up"
        )
        tenant = json.loads(run_cli(env, "tenant", "create", "anomaly-e2e", "--json"))["id"]
        token = run_cli(env, "token", "create", "-t", tenant, "-r", "admin")
        procs.append(
            spawn(
                env,
                tmp_path / "fast.log",
                *("agent", "start", "fast-1", "-c", "echo", "--tenant", tenant),
            )
        )
        auth = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as client,
            connect(f"ws://127.0.0.1:{port}/ws?token={token}") as ws,
        ):
            await ws.send(json.dumps({"type": "subscribe", "data": {"channel": "system"}}))
            stop = asyncio.Event()

            async def workload() -> int:
                sent = 0
                while not stop.is_set() and sent < 2000:  # bounded in count and time
                    r = await client.post(
                        f"/v1/tenants/{tenant}/tasks",
                        json={"capability": "echo", "payload": {"n": sent}},
                    )
                    assert r.status_code == 201, r.text
                    sent += 1
                    await asyncio.sleep(0.05)
                return sent

            async def completed() -> int:
                page = await client.get(
                    f"/v1/tenants/{tenant}/tasks", params={"status": "completed", "limit": 100}
                )
                return len(page.json()["tasks"])

            producer = asyncio.create_task(workload())
            try:
                await steady(completed)
                procs.append(
                    spawn(
                        env,
                        tmp_path / "slow.log",
                        *("agent", "start", "slow-1", "-c", "echo", "--tenant", tenant),
                        *("--handler", "tests.e2e.slow_handler:handle"),
                    )
                )

                async def slow_listed() -> None:
                    while True:
                        r = await client.get(f"/v1/tenants/{tenant}/agents")
                        if "slow-1" in {a["agent_id"] for a in r.json()["agents"]}:
                            return
                        await asyncio.sleep(0.2)

                async with asyncio.timeout(30):
                    await slow_listed()
                anomaly: dict[str, Any] | None = None
                async with asyncio.timeout(10 + DELAY):  # its first task takes DELAY seconds
                    while anomaly is None:
                        msg = json.loads(await ws.recv())
                        if msg["type"] == "ping":
                            await ws.send(
                                json.dumps(
                                    {"type": "pong", "data": {"message_id": msg["message_id"]}}
                                )
                            )
                            continue
                        data = msg.get("data", {})
                        if (
                            msg["type"] == "system_event"
                            and data.get("event_type") == "anomaly.detected"
                            and data["data"]["stream"] == "task_latency"
                            and data["data"].get("context", {}).get("agent_id") == "slow-1"
                        ):
                            anomaly = data["data"]
            finally:
                stop.set()
                await producer
            assert anomaly["tenant_id"] == tenant
            assert anomaly["value"] >= DELAY * 1000
            assert anomaly["z_score"] > 3
            audit = await client.get(
                f"/v1/tenants/{tenant}/audit", params={"action": "anomaly_detected"}
            )
            assert audit.status_code == 200, audit.text
            entries = [e for e in audit.json()["entries"] if e["action"] == "anomaly_detected"]
            assert any(e["resource_id"] == "task_latency" for e in entries)
            text = (await client.get("/metrics")).text
            counted = [
                s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "agentmesh_anomalies_total"
                and s.labels == {"tenant_id": tenant, "stream": "task_latency"}
            ]
            assert counted
            assert counted[0] >= 1
    finally:
        codes = []
        for proc in reversed(procs):  # agents first (they finish their tasks), then the mesh
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                codes.append(proc.wait(30))
    assert codes == [0] * len(procs), (tmp_path / "slow.log").read_text()[-2000:]
