"""``agentmesh token/agent/task`` as real subprocesses, on SQLite and against a live API."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.cli_control.conftest import Env, assert_one_line_error

pytestmark = pytest.mark.e2e


def seed_agent(env: Env, agent_id: str) -> None:
    body = {
        "agent_id": agent_id,
        "name": f"agent {agent_id}",
        "capabilities": [{"name": "summarize"}],
    }
    r = httpx.post(
        f"{env.live.url}/v1/tenants/acme/agents", json=body, headers=env.live.auth("acme")
    )
    assert r.status_code == 201, r.text


def test_token_create(env: Env) -> None:
    out = env.json(
        "token", "create", "--tenant", "acme", "--role", "observer,agent", "--expires", "1h"
    )
    assert out["tenant_id"] == "acme"
    assert out["roles"] == ["observer", "agent"]
    claims = env.live.tokens.verify(out["token"])
    assert (claims.expires_at - claims.issued_at).total_seconds() == 3600
    r = httpx.get(
        f"{env.live.url}/v1/tenants/acme/agents",
        headers={"Authorization": f"Bearer {out['token']}"},
    )
    assert r.status_code == 200
    plain = env.run("token", "create", "-t", "acme", "-r", "admin")
    assert plain.returncode == 0
    assert env.live.tokens.verify(plain.stdout.strip()).roles == ("admin",)
    assert_one_line_error(env.run("token", "create", "-t", "acme", "-r", "god"), "unknown role")
    assert_one_line_error(env.run("token", "create", "-t", "bad tenant", "-r", "admin"), "tenant")
    assert_one_line_error(
        env.run("token", "create", "-t", "acme", "-r", "admin", "--expires", "soon"), "duration"
    )


def test_local_store(env: Env) -> None:
    seed_agent(env, "worker-1")
    agents = env.json("agent", "list")
    assert [a["agent_id"] for a in agents["agents"]] == ["worker-1"]
    assert env.json("agent", "show", "worker-1")["status"] == "AVAILABLE"
    assert env.json("agent", "pause", "worker-1", "--reason", "maint")["status"] == "PAUSED"
    assert env.json("agent", "list", "--status", "paused")["pagination"]["total"] == 1
    assert env.json("agent", "resume", "worker-1")["status"] == "AVAILABLE"
    assert env.json("agent", "terminate", "worker-1")["status"] == "TERMINATED"
    assert_one_line_error(env.run("agent", "resume", "worker-1"), "resume")
    assert_one_line_error(env.run("agent", "show", "ghost-1"), "not found")

    task = env.json(
        "task", "submit", "-c", "summarize", "--payload", '{"text": "hi"}', "--priority", "high"
    )
    assert task["status"] == "offered"
    assert task["priority"] == 4
    listed = env.json("task", "list", "--status", "offered")
    assert [t["task_id"] for t in listed["tasks"]] == [task["task_id"]]
    assert env.json("task", "show", task["task_id"])["payload"] == {"text": "hi"}
    assert env.json("task", "cancel", task["task_id"], "--reason", "no")["status"] == "cancelled"
    assert_one_line_error(env.run("task", "retry", task["task_id"]), "retry")
    assert_one_line_error(
        env.run("task", "submit", "-c", "x", "--payload", "{oops"), "Invalid JSON for --payload"
    )
    assert_one_line_error(env.run("task", "submit", "-c", "bad capability!"))
    table = env.run("task", "list")
    assert table.returncode == 0
    assert "cancelled" in table.stdout
    second = env.json("task", "submit", "-c", "summarize")
    first_page = env.json("task", "list", "--limit", "1")
    assert [t["task_id"] for t in first_page["tasks"]] == [second["task_id"]]
    rest = env.json("task", "list", "--limit", "1", "--cursor", first_page["next_cursor"])
    assert [t["task_id"] for t in rest["tasks"]] == [task["task_id"]]
    assert rest["next_cursor"] is None
    paged = env.run("task", "list", "--limit", "1")
    assert f"next page: --cursor {first_page['next_cursor']}" in paged.stdout
    assert_one_line_error(env.run("task", "list", "--cursor", "bogus"), "cursor")
    # the control plane sees what the CLI wrote (same store)
    r = httpx.get(
        f"{env.live.url}/v1/tenants/acme/tasks/{task['task_id']}", headers=env.live.auth("acme")
    )
    assert r.json()["status"] == "cancelled"
    flow = env.json(
        "task", "submit", "--workflow-type", "market_based", "--max-attempts", "2",
        "--payload", '{"capability": "render", "payload": {"frames": 2}}',
    )  # fmt: skip
    assert (flow["task_type"], flow["max_attempts"]) == ("market", 2)
    assert flow["required_capabilities"] == ["workflow-market"]
    assert_one_line_error(
        env.run("task", "submit", "--workflow-type", "blackboard"),
        "orchestrator_worker, hierarchical, market, swarm",
    )


def test_against_the_control_plane(env: Env) -> None:
    seed_agent(env, "worker-2")
    token = env.live.token("acme", "orchestrator", sub="ops")
    remote = {
        "AGENTMESH_API_URL": env.live.url,
        "AGENTMESH_TOKEN": token,
        "DATABASE_URL": "sqlite+aiosqlite:////nonexistent/dir/x.db",
    }
    agents = env.json("agent", "list", extra=remote)
    assert [a["agent_id"] for a in agents["agents"]] == ["worker-2"]
    assert env.json("agent", "pause", "worker-2", extra=remote)["status"] == "PAUSED"
    shown = env.run("agent", "show", "worker-2", extra=remote)
    assert shown.returncode == 0
    assert "PAUSED" in shown.stdout
    task = env.json("task", "submit", "-c", "summarize", "--task-id", "job-1", extra=remote)
    assert task["task_id"] == "job-1"
    assert env.json("task", "list", extra=remote)["pagination"]["total"] == 1
    env.json("task", "submit", "-c", "summarize", "--task-id", "job-2", extra=remote)
    page = env.json("task", "list", "--limit", "1", extra=remote)
    assert [t["task_id"] for t in page["tasks"]] == ["job-2"]
    after = env.json("task", "list", "--limit", "1", "--cursor", page["next_cursor"], extra=remote)
    assert [t["task_id"] for t in after["tasks"]] == ["job-1"]
    assert env.json("task", "cancel", "job-1", extra=remote)["status"] == "cancelled"
    assert_one_line_error(
        env.run("task", "cancel", "job-1", extra=remote), "INVALID_TRANSITION", "409"
    )
    observer = {**remote, "AGENTMESH_TOKEN": env.live.token("acme", "observer")}
    assert_one_line_error(
        env.run("agent", "terminate", "worker-2", extra=observer), "FORBIDDEN", "403"
    )
    other = {**remote, "AGENTMESH_TOKEN": env.live.token("other", "admin")}
    assert_one_line_error(env.run("agent", "list", extra=other), "403")
    assert_one_line_error(
        env.run("agent", "list", "--token", "garbage", "--api-url", env.live.url), "AUTH_INVALID"
    )
    assert_one_line_error(
        env.run("agent", "list", "--api-url", env.live.url, extra={"AGENTMESH_TOKEN": ""}),
        "--token",
    )
    assert_one_line_error(
        env.run("task", "list", "--api-url", "http://127.0.0.1:9", "--token", token), "cannot reach"
    )
    # the operator's actions are in the audit log with the token's subject
    r = httpx.get(
        f"{env.live.url}/v1/tenants/acme/audit",
        params={"actor": "ops"},
        headers=env.live.auth("acme"),
    )
    actions = {e["action"] for e in r.json()["entries"]}
    assert {"agent_updated", "task_assigned", "task_cancelled"} <= actions
