"""Orchestrator-worker on NATS JetStream over OS processes: a worker SIGKILLed while it holds
unacked subtasks loses none of them, and only what it held runs again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.patterns.worker_kill_agents import CAPABILITY, WORKERS

ROOT = Path(__file__).resolve().parents[3]
SUBTASKS = 200
MAX_CONCURRENT = 4  # per worker: the most a worker can hold unacked at once
FAST = {
    "AGENTMESH_ACK_WAIT": "2",
    "AGENTMESH_HEARTBEAT_INTERVAL": "0.2",
    "AGENTMESH_HEALTH_CHECK_TIMEOUT": "1.5",
    "LOG_LEVEL": "WARNING",
}


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def read_log(path: Path) -> list[tuple[str, int, str]]:
    """``(event, n, task_id)`` lines a worker wrote (``start``/``end`` per execution)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        event, n, task_id = line.split()
        rows.append((event, int(n), task_id))
    return rows


def unfinished(rows: list[tuple[str, int, str]]) -> set[int]:
    """Subtasks whose execution started but did not end."""
    started = {(n, t) for e, n, t in rows if e == "start"}
    ended = {(n, t) for e, n, t in rows if e == "end"}
    return {n for n, _ in started - ended}


def wait_until_busy(victim: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Return once the victim has done some work and holds subtasks it has not finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert victim.poll() is None, "the victim exited on its own"
        rows = read_log(log)
        if sum(e == "end" for e, _, _ in rows) >= 5 and unfinished(rows):
            return
        time.sleep(0.002)
    raise AssertionError(f"the victim never held a subtask in {timeout:g}s")


def leftover_processes(marker: str) -> list[int]:
    """PIDs whose command line mentions ``marker`` (this test's unique tenant)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("mode", ["queue", "routed"])
def test_sigkilled_worker_loses_no_subtask(mode: str, nats_url: str, tmp_path: Path) -> None:
    tenant = "t" + uuid.uuid4().hex[:10]
    effects = tmp_path / "effects"
    effects.mkdir()
    env = {
        **os.environ,
        **FAST,
        "NATS_URL": nats_url,
        "AGENTMESH_TRANSPORT": nats_url,
        "AGENTMESH_DATA_DIR": str(tmp_path),
        "SIDE_EFFECT_DIR": str(effects),
    }
    env.pop("AGENTMESH_TENANT", None)
    processes: list[subprocess.Popen[bytes]] = []  # SIGKILLed by PID in the finally
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(WORKERS):
            workers.append(spawn(
                [
                    "agentmesh.cli.main", "agent", "start", f"worker-{i}",
                    "--capabilities", CAPABILITY, "--tenant", tenant,
                    "--handler", "tests.e2e.patterns.worker_kill_agents:record",
                    "--max-concurrent", str(MAX_CONCURRENT),
                ],
                env,
                tmp_path / f"worker-{i}.log",
            ))  # fmt: skip
            processes.append(workers[-1])
        out = tmp_path / "result.json"
        orchestrator = spawn(
            [
                "tests.e2e.patterns.worker_kill_agents",
                nats_url, tenant, str(SUBTASKS), mode, str(out),
            ],
            env,
            tmp_path / "orchestrator.log",
        )  # fmt: skip
        processes.append(orchestrator)
        victim = workers[0]
        victim_log = effects / f"{victim.pid}.log"
        # freeze the victim, then kill it only if it really holds unfinished subtasks (a
        # subtask takes 20 ms: between a look at its log and the kill it may have finished)
        for _ in range(50):
            wait_until_busy(victim, victim_log, timeout=20)
            os.kill(victim.pid, signal.SIGSTOP)
            if unfinished(read_log(victim_log)):
                break
            os.kill(victim.pid, signal.SIGCONT)
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
        held = unfinished(read_log(victim_log))  # the log is final now

        rc = orchestrator.wait(timeout=25)
        assert rc == 0, (tmp_path / "orchestrator.log").read_text()[-3000:]
        result = json.loads(out.read_text())
    finally:
        for p in processes:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
    assert leftover_processes(tenant) == [], "no orphan process of this test"

    # the job completed, every subtask's result exactly once in the aggregate
    assert result["complete"], result["subtasks"]
    assert sorted(r["n"] for r in result["value"]) == list(range(SUBTASKS))
    assert all(s["agent_id"] is not None for s in result["subtasks"])
    if mode == "routed":  # the orchestrator moved the dead worker's work itself
        assert result["reassigned"] >= len(held)
    else:  # JetStream gave the unacked deliveries back after ack_wait
        assert result["reassigned"] == 0

    # every subtask executed (to its end) at least once; the victim's unfinished ones
    # were finished by a survivor
    rows = {p.pid: read_log(effects / f"{p.pid}.log") for p in workers}
    ended = Counter(n for log in rows.values() for e, n, _ in log if e == "end")
    assert set(ended) == set(range(SUBTASKS))
    assert held, "the kill hit the victim while it held subtasks"
    survivors_ended = {n for pid, log in rows.items() if pid != victim.pid for e, n, _ in log}
    assert held <= survivors_ended
    assert {r["n"] for r in result["value"] if r["pid"] == victim.pid}.isdisjoint(held)

    # re-executions: only subtasks the victim had taken, no more than it could hold
    started = Counter(n for log in rows.values() for e, n, _ in log if e == "start")
    rerun = {n for n, c in started.items() if c > 1}
    victim_took = {n for e, n, _ in rows[victim.pid] if e == "start"}
    assert held <= rerun
    assert rerun <= victim_took
    assert sum(c - 1 for c in started.values()) <= MAX_CONCURRENT
