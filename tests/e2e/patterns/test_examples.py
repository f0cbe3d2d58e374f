"""Every example end to end: in memory, and on NATS spread over three OS processes
(two agent processes started from the example itself plus the client in this process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh
from agentmesh.config import Settings
from tests.helpers import eventually, load_example

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
FAST = {
    "AGENTMESH_HEARTBEAT_INTERVAL": "0.2",
    "AGENTMESH_HEALTH_CHECK_TIMEOUT": "1.5",
    "AGENTMESH_ACK_WAIT": "2",
}


def check_orchestrator_worker(out: Any) -> None:
    assert out["the"] == 5
    assert out["dog"] == 2


def check_hierarchical(out: Any) -> None:
    assert out["publish"] is False
    assert [s["approved"] for s in out["sections"]] == [True, True, False]


def check_blackboard(out: Any) -> None:
    assert out == {"1A": "CAT", "1D": "COW", "2D": "TOE"}


def check_market(out: Any) -> None:
    assert [s["frames"] for s in out] == [10, 20, 30]
    assert all(s["winner"] == s["farm"] for s in out)
    assert out[0]["winner"].startswith("budget-")


def check_swarm(out: Any) -> None:
    results = out["results"]
    assert results["link"]["from"] == ["core.o", "cli.o"]
    assert results["test"]["passed"] is True


CHECKS: dict[str, Callable[[Any], None]] = {
    "orchestrator_worker": check_orchestrator_worker,
    "hierarchical": check_hierarchical,
    "blackboard": check_blackboard,
    "market": check_market,
    "swarm": check_swarm,
}


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    env = {
        "AGENTMESH_TENANT": "t" + uuid.uuid4().hex[:8],
        "AGENTMESH_DATA_DIR": str(tmp_path),
        "BOARD": "b" + uuid.uuid4().hex[:8],
        **FAST,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_examples_are_short() -> None:
    for name in CHECKS:
        lines = (EXAMPLES / f"{name}.py").read_text().count("\n")
        assert lines < 80, f"{name}.py has {lines} lines"


@pytest.mark.parametrize("name", list(CHECKS))
async def test_example_in_memory(name: str, example_env: dict[str, str]) -> None:
    out = await load_example(name).main(f"memory://{uuid.uuid4().hex}", "all")
    CHECKS[name](out)


@pytest.fixture
def agent_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)


def start_agents(
    name: str, url: str, example_env: dict[str, str], log: Path
) -> list[subprocess.Popen[bytes]]:
    """Two agent processes of the example ("workers" part), logging to ``log``."""
    env = {**os.environ, **example_env, "LOG_LEVEL": "WARNING"}
    procs = []
    for suffix in ("p1", "p2"):
        with log.open("ab") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(EXAMPLES / f"{name}.py"), url, "workers", suffix],
                    cwd=ROOT, env=env, stdout=out, stderr=out,
                )
            )  # fmt: skip
    return procs


@pytest.mark.parametrize("name", list(CHECKS))
async def test_example_on_nats_over_three_processes(
    name: str,
    example_env: dict[str, str],
    nats_url: str,
    tmp_path: Path,
    agent_processes: list[subprocess.Popen[bytes]],
) -> None:
    log = tmp_path / f"{name}.log"
    agent_processes.extend(start_agents(name, nats_url, example_env, log))
    tenant = example_env["AGENTMESH_TENANT"]
    watcher = Mesh(nats_url, tenant=tenant, settings=Settings(agentmesh_data_dir=tmp_path))  # type: ignore[call-arg]
    await watcher.start()
    try:  # both agent processes are up before the client starts
        await eventually(
            lambda: (
                len({r.pid for r in watcher.registry.agents(tenant)}) == 2
                or any(p.poll() is not None for p in agent_processes)
            ),
            timeout=30,
            interval=0.1,
        )
        assert all(p.poll() is None for p in agent_processes), log.read_text()[-3000:]
        out = await load_example(name).main(nats_url, "client")
        CHECKS[name](out)
        pids = {r.pid for r in watcher.registry.agents(tenant)}
        assert {p.pid for p in agent_processes} <= pids
        assert os.getpid() not in {p.pid for p in agent_processes}
    finally:
        await watcher.stop()
