"""`agentmesh top` against a running `agentmesh up --demo`: `--once --json` shows the demo
agents, a throughput measured between two samples, the task queues and a task that failed
for good; the live view refreshes until Ctrl-C and exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.runtime.embedded import free_port
from tests.helpers import cli_token, wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")


def test_top_once_json_and_the_live_view(tmp_path: Path) -> None:
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
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *args: str) -> None:
        with (tmp_path / f"{name}.log").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [AGENTMESH, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            )

    try:
        spawn("up", "up", "--demo", "--port", str(port))
        wait_until(
            lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 30, "the API up"
        )
        spawn(
            "doomed",
            *("agent", "start", "doomed-1", "-c", "doom", "--tenant", "demo"),
            *("--handler", "tests.e2e.slow_handler:doomed"),
        )
        token = cli_token(env, "demo")
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        with client:
            task_id = client.post(
                "/v1/tenants/demo/tasks", json={"capability": "doom", "payload": {}}
            ).json()["task_id"]
            wait_until(
                lambda: (
                    client.get(f"/v1/tenants/demo/tasks/{task_id}").json()["status"]
                    in ("failed", "dead_lettered")
                ),
                30,
                "the doomed task failed for good",
            )

        def snapshot() -> dict[str, Any] | None:
            out = subprocess.run(
                [AGENTMESH, "top", "--once", "--json", "--tenant", "demo", "--interval", "2"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            snap: dict[str, Any] = json.loads(out.stdout)
            return snap if snap["throughput_per_s"] and len(snap["agents"]) >= 5 else None

        snap = wait_until(snapshot, 45, "a snapshot with the demo agents at work")
        ids = {a["agent_id"] for a in snap["agents"]}
        assert {"summarizer-1", "translator-1", "analyst-1", "analyst-2", "doomed-1"} <= ids
        assert snap["tenant"] == "demo"
        assert 0 < snap["throughput_per_s"] < 50  # the demo produces ~1.7 tasks/s
        assert all(q["queue"].startswith("task:") for q in snap["queues"])
        failed = {f["task_id"]: f for f in snap["recent_failures"]}
        assert failed[task_id]["agent_id"] == "doomed-1"
        assert "cannot handle" in failed[task_id]["error"]

        live = tmp_path / "top.log"
        with live.open("wb") as out:
            viewer = subprocess.Popen(
                [AGENTMESH, "top", "--tenant", "demo", "--interval", "0.5"],
                env={**env, "COLUMNS": "160"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        time.sleep(4)  # several refreshes (a terminal sees them in place; a file, the last)
        viewer.send_signal(signal.SIGINT)
        assert viewer.wait(30) == 0, live.read_text()[-2000:]
        assert "summarizer-1" in live.read_text()
        assert "tasks/s" in live.read_text()
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
