"""The seed README's swarm example as written, three processes on NATS; and the other kinds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmesh import Mesh
from agentmesh.config import Settings
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli_env(nats_url: str, tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ,
        NATS_URL=nats_url,
        AGENTMESH_TENANT="t" + uuid.uuid4().hex[:8],
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.2",
        AGENTMESH_HEALTH_CHECK_TIMEOUT="1.5",
        AGENTMESH_ACK_WAIT="2",
        LOG_LEVEL="WARNING",
    )


@pytest.fixture
def spawn(cli_env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def agentmesh(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agentmesh.cli.main", "agent", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )


async def test_readme_swarm_example_runs_a_task(
    cli_env: dict[str, str], spawn: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    log = tmp_path / "swarm.log"
    spawn.append(
        agentmesh(
            cli_env, log, "start-swarm-orchestrator", "swarm-1",
            "--capabilities", "coordination,management",
        )
    )  # fmt: skip
    for worker, caps in (("worker-1", "processing"), ("worker-2", "analysis")):
        spawn.append(
            agentmesh(
                cli_env, log, "start-swarm-worker", worker, "--capabilities", caps,
                "--swarm-orchestrator-id", "swarm-1",
            )
        )  # fmt: skip
    tenant = cli_env["AGENTMESH_TENANT"]
    client = Mesh(
        cli_env["NATS_URL"],
        tenant=tenant,
        settings=Settings(agentmesh_data_dir=tmp_path),  # type: ignore[call-arg]
    )
    await client.start()
    try:
        await eventually(lambda: len(client.registry.agents(tenant)) == 3, timeout=30, interval=0.1)
        pids = {r.pid for r in client.registry.agents(tenant)}
        assert len(pids) == 3
        job = await client.submit(
            "coordination",
            {
                "tasks": [
                    {"id": "count", "capability": "processing",
                     "payload": {"operation": "word_count", "text": "a swarm of agents"}},
                    {"id": "shout", "capability": "analysis", "depends_on": ["count"],
                     "payload": {"operation": "uppercase", "text": "done"}},
                ]
            },
        )  # fmt: skip
        out = await client.wait_result(job, timeout=30)
        assert out["results"]["count"]["result"] == 4
        assert out["results"]["shout"]["result"] == "DONE"
        single = await client.submit("coordination", {"operation": "sum", "values": [1, 2, 3]})
        assert (await client.wait_result(single, timeout=30))["results"]["task"]["result"] == 6
    finally:
        await client.stop()


def test_task_executor_and_orchestrator_commands(
    cli_env: dict[str, str], spawn: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    log = tmp_path / "kinds.log"
    spawn.append(agentmesh(cli_env, log, "start-task-executor", "exec-1", "-c", "math text"))
    tenant = cli_env["AGENTMESH_TENANT"]
    done = subprocess.run(
        [
            sys.executable, "-m", "agentmesh.cli.main", "agent", "start-orchestrator", "orch-1",
            "--capabilities", "coordination", "--tenant-id", tenant,
            "--target-agent-id", "exec-1",
            "--task-details", '{"operation": "sum", "values": [20, 22]}', "--wait", "30",
        ],
        cwd=ROOT, env=cli_env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:] + log.read_text()[-2000:]
    assert b"TaskAssigned" in done.stdout
    assert b'"result": 42' in done.stdout
    bad = subprocess.run(
        [
            sys.executable, "-m", "agentmesh.cli.main", "agent", "start-orchestrator", "orch-1",
            "-c", "coordination", "--tenant-id", tenant, "--target-agent-id", "exec-1",
            "--task-details", "{nope",
        ],
        cwd=ROOT, env=cli_env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0
    assert b"Invalid JSON for --task-details" in bad.stderr
    assert b"Traceback" not in bad.stderr
