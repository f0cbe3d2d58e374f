"""``agentmesh audit list/verify`` as real subprocesses, next to a live control plane on
the same SQLite store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from agentmesh.api.options import ApiOptions
from agentmesh.config import Settings
from tests.e2e.api.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.e2e
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")
SECRET = "cli-audit-secret-" + "d" * 47


class Cli:
    def __init__(self, tmp: Path, live: LiveServer, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.live = live
        self.env = env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AGENTMESH, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            cwd=self.tmp,
        )

    def json(self, *args: str) -> Any:
        proc = self.run(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    db = f"sqlite+aiosqlite:///{tmp_path / 'agentmesh.db'}"
    key = Fernet.generate_key().decode()
    settings = Settings(
        jwt_secret_key=SECRET,
        encryption_key=key,
        database_url=db,
        environment="testing",
        agentmesh_data_dir=tmp_path,
    )
    live = start_server(settings, ApiOptions(rate_limit_enabled=False))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "JWT_"))}
    base.update(
        {
            "JWT_SECRET_KEY": SECRET,
            "ENCRYPTION_KEY": key,
            "DATABASE_URL": db,
            "AGENTMESH_DATA_DIR": str(tmp_path),
            "AGENTMESH_TENANT": "acme",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    yield Cli(tmp_path, live, base)
    stop_server(live)


def one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], lines[0]


def test_audit_list_and_verify(cli: Cli) -> None:
    body = {"agent_id": "worker-1", "name": "worker 1", "capabilities": [{"name": "summarize"}]}
    r = httpx.post(
        f"{cli.live.url}/v1/tenants/acme/agents", json=body, headers=cli.live.auth("acme")
    )
    assert r.status_code == 201, r.text
    # a domain event that never passes through the API: the CLI writes to the store
    task = cli.json("task", "submit", "-c", "summarize", "--payload", '{"text": "secret"}')

    local = cli.json("audit", "list", "--tenant", "acme", "--limit", "100")
    seen = {(e["action"], e["actor"]) for e in local["entries"]}
    assert {("agent_created", "tester"), ("agent_created", "worker-1")} <= seen
    assert ("task_submitted", "system") in seen
    submitted = cli.json("audit", "list", "--action", "task_submitted")
    assert [e["resource_id"] for e in submitted["entries"]] == [task["task_id"]]
    assert "payload" not in submitted["entries"][0]["details"]

    token = cli.live.token("acme", "admin", sub="auditor")
    remote = cli.json(
        "audit", "list", "--action", "task_submitted", "--api-url", cli.live.url, "--token", token
    )
    assert remote["entries"] == submitted["entries"]  # one trail, written once
    table = cli.run("audit", "list", "--limit", "3")
    assert table.returncode == 0, table.stderr
    assert "audit trail of acme" in table.stdout
    assert "task_submitted" in table.stdout

    intact = cli.run("audit", "verify", "--tenant", "acme")
    assert intact.returncode == 0, intact.stderr
    assert "audit trail intact" in intact.stdout
    report = cli.json("audit", "verify")
    assert report["ok"] is True
    assert report["tenant_entries"] >= 3
    assert report["checked"] >= report["tenant_entries"]

    one_line_error(cli.run("audit", "list", "--action", "exploded"), "unknown action")
    one_line_error(cli.run("audit", "list", "--api-url", cli.live.url), "--token")
    observer = cli.live.token("acme", "observer")
    one_line_error(cli.run("audit", "list", "--api-url", cli.live.url, "--token", observer), "403")

    with sqlite3.connect(cli.tmp / "agentmesh.db") as raw:  # edit a row behind the chain
        raw.execute("UPDATE api_audit_log SET actor = 'mallory' WHERE seq = 2")
    broken = cli.run("audit", "verify", "--tenant", "acme")
    assert broken.returncode == 1
    assert "audit trail BROKEN at entry" in broken.stdout
