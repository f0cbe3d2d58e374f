"""``agentmesh audit list/verify`` as real subprocesses, next to a live control plane on
the same SQLite store."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from tests.e2e.cli_control.conftest import Env, assert_one_line_error

pytestmark = pytest.mark.e2e


def test_audit_list_and_verify(env: Env) -> None:
    body = {"agent_id": "worker-1", "name": "worker 1", "capabilities": [{"name": "summarize"}]}
    r = httpx.post(
        f"{env.live.url}/v1/tenants/acme/agents", json=body, headers=env.live.auth("acme")
    )
    assert r.status_code == 201, r.text
    # a domain event that never passes through the API: the CLI writes to the store
    task = env.json("task", "submit", "-c", "summarize", "--payload", '{"text": "secret"}')

    local = env.json("audit", "list", "--tenant", "acme", "--limit", "100")
    seen = {(e["action"], e["actor"]) for e in local["entries"]}
    assert {("agent_created", "tester"), ("agent_created", "worker-1")} <= seen
    assert ("task_submitted", "system") in seen
    submitted = env.json("audit", "list", "--action", "task_submitted")
    assert [e["resource_id"] for e in submitted["entries"]] == [task["task_id"]]
    assert "payload" not in submitted["entries"][0]["details"]

    token = env.live.token("acme", "admin", sub="auditor")
    remote = env.json(
        "audit", "list", "--action", "task_submitted", "--api-url", env.live.url, "--token", token
    )
    assert remote["entries"] == submitted["entries"]  # one trail, written once
    table = env.run("audit", "list", "--limit", "3")
    assert table.returncode == 0, table.stderr
    assert "audit trail of acme" in table.stdout
    assert "task_submitted" in table.stdout

    intact = env.run("audit", "verify", "--tenant", "acme")
    assert intact.returncode == 0, intact.stderr
    assert "audit trail intact" in intact.stdout
    report = env.json("audit", "verify")
    assert report["ok"] is True
    assert report["tenant_entries"] >= 3
    assert report["checked"] >= report["tenant_entries"]

    assert_one_line_error(env.run("audit", "list", "--action", "exploded"), "unknown action")
    assert_one_line_error(env.run("audit", "list", "--api-url", env.live.url), "--token")
    observer = env.live.token("acme", "observer")
    assert_one_line_error(
        env.run("audit", "list", "--api-url", env.live.url, "--token", observer), "403"
    )

    with sqlite3.connect(env.tmp / "agentmesh.db") as raw:  # edit a row behind the chain
        raw.execute("UPDATE api_audit_log SET actor = 'mallory' WHERE seq = 2")
    broken = env.run("audit", "verify", "--tenant", "acme")
    assert broken.returncode == 1
    assert "audit trail BROKEN at entry" in broken.stdout
