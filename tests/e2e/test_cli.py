"""The real ``agentmesh`` entry points, as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentmesh.runtime.embedded import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [AGENTMESH, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT
    )


def test_version_and_module_entry_point() -> None:
    assert run("--version").stdout.strip() == "AgentMesh EDA 0.1.0"
    proc = subprocess.run(
        [sys.executable, "-m", "agentmesh.cli.main", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "AgentMesh EDA 0.1.0"


@pytest.mark.parametrize("command", [[], ["up"], ["agent"], ["agent", "start"], ["status"]])
def test_every_command_has_help(command: list[str]) -> None:
    proc = run(*command, "--help")
    assert proc.returncode == 0
    assert "Usage" in proc.stdout


def test_bad_agent_id_is_one_error_line() -> None:
    proc = run("agent", "start", "bad id!", "--capabilities", "x")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "invalid agent id 'bad id!'" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "command", [["agent", "start", "good-agent", "--capabilities", "a,b"], ["status"]]
)
def test_unreachable_nats_url_is_named_within_five_seconds(
    command: list[str], tmp_path: Path
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    run("--version")  # what starting the process costs on this machine right now
    startup = time.monotonic() - started
    started = time.monotonic()
    proc = run(*command, env={"NATS_URL": url, "AGENTMESH_DATA_DIR": str(tmp_path)}, timeout=30)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert url in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    # the 5 s connect window, plus the process start measured just before (loaded CI)
    assert elapsed - startup < 5 + 1, f"took {elapsed:.1f}s, {startup:.1f}s of it to start"


def _pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive


def test_up_demo_works_within_15_seconds_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    env = dict(os.environ, AGENTMESH_DATA_DIR=str(tmp_path), AGENTMESH_HEARTBEAT_INTERVAL="0.5")
    env.pop("NATS_URL", None)
    port = free_port()
    out = (tmp_path / "up.out").open("w")
    proc = subprocess.Popen(
        [AGENTMESH, "up", "--demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        record_file = tmp_path / "runtime.json"
        working = False
        while time.monotonic() < deadline and not working:
            time.sleep(0.25)
            text = (tmp_path / "up.out").read_text()
            working = any(
                line.startswith("[agentmesh] tasks") and " 0/" not in line
                for line in text.splitlines()
            )
        assert working, (tmp_path / "up.out").read_text()[-3000:]
        record = json.loads(record_file.read_text())
        status = run("status", "--json", env={"AGENTMESH_DATA_DIR": str(tmp_path)})
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["broker"]["status"] == "ok"
        assert report["broker"]["embedded"] is True
        assert report["store"]["status"] == "ok"
        agents = {a["agent_id"] for a in report["agents"] if a["tenant_id"] == "demo"}
        assert {"summarizer-1", "translator-1", "analyst-1", "analyst-2"} <= agents
        assert report["agents_source"] == "registry"
        demo_queues = {q["queue"] for q in report["queues"] if q["tenant_id"] == "demo"}
        assert {"task:cap-summarize", "task:cap-analyze", "task:cap-translate"} <= demo_queues
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        out.close()
    assert code == 0, (tmp_path / "up.out").read_text()[-3000:]
    assert _pids_alive([record["nats_pid"]]) == []
    assert not record_file.exists()
    assert "Traceback" not in (tmp_path / "up.out").read_text()
