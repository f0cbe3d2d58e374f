"""REST routes on the in-memory store: behaviour, status codes and bodies."""

from __future__ import annotations

import uuid
from pathlib import Path

from agentmesh.commands import FailTask, SubmitTask
from tests.unit.api.catalog import SECRET_MARK, envelope, seed_tenant
from tests.unit.api.conftest import Api, agent_body


async def test_health_metrics_and_headers(api: Api) -> None:
    r = await api.client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    assert body["version"] == "1.0.0"
    assert body["uptime"] >= 0
    assert len(r.headers["X-Request-ID"]) >= 32
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Content-Security-Policy"] == "default-src 'self'"
    assert "Strict-Transport-Security" not in r.headers
    r = await api.client.get("/health", headers={"X-Request-ID": "client-chosen-id-1"})
    assert r.headers["X-Request-ID"] == "client-chosen-id-1"

    r = await api.client.get("/health/ready")
    assert r.status_code == 200
    ready = r.json()
    assert ready["components"]["store"]["status"] == "ok"
    assert ready["components"]["broker"]["status"] == "absent"

    r = await api.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "agentmesh_" in r.text
    r = await api.client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")  # OpenMetrics: the format that carries exemplars

    r = await api.client.get("/v1/metrics")
    assert r.status_code == 200
    m = r.json()
    assert set(m) == {"agent_count", "messages_processed", "uptime", "performance_metrics"}
    assert m["performance_metrics"]["requests_total"] >= 4


async def test_https_gets_hsts(api: Api) -> None:
    import httpx

    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        r = await c.get("/health")
    assert r.headers["Strict-Transport-Security"] == "max-age=86400; includeSubDomains; preload"


async def test_agent_create_get_list_and_conflict(api: Api) -> None:
    h = api.auth("acme", "admin")
    body = agent_body(
        "worker-1",
        tenant_id="acme",
        agent_type="processor",
        description="does things",
        resource_requirements={"cpu": 2, "memory": 4.5, "storage": 20},
        metadata={"team": "blue"},
        tags=["a", "b"],
    )
    r = await api.client.post("/v1/tenants/acme/agents", json=body, headers=h)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["status"] == "AVAILABLE"
    assert doc["api_version"] == "1.0.0"
    assert doc["capabilities"] == [{"name": "summarize", "level": 4.0}]
    assert doc["resource_requirements"]["cpu_cores"] == 2
    assert doc["metadata"] == {"team": "blue"}

    r = await api.client.post("/v1/tenants/acme/agents", json=body, headers=h)
    assert r.status_code == 409
    assert r.json()["code"] == "AGENT_EXISTS"

    for i, kind in enumerate(("worker", "analyzer", "worker")):
        caps = [{"name": "translate", "level": 2}] if i == 1 else [{"name": "summarize"}]
        r = await api.client.post(
            "/v1/tenants/acme/agents",
            json=agent_body(f"extra-{i}", agent_type=kind, capabilities=caps),
            headers=h,
        )
        assert r.status_code == 201, r.text

    r = await api.client.get("/v1/tenants/acme/agents", headers=h)
    page = r.json()
    assert page["pagination"]["total"] == 4
    r = await api.client.get(
        "/v1/tenants/acme/agents",
        params={"agent_type": "worker", "limit": 1, "sort_by": "name", "sort_order": "asc"},
        headers=h,
    )
    page = r.json()
    assert [a["agent_id"] for a in page["agents"]] == ["extra-0"]
    assert page["pagination"] == {
        "total": 2,
        "limit": 1,
        "offset": 0,
        "has_more": True,
        "next_offset": 1,
    }
    assert page["filters_applied"] == {"agent_type": "worker"}
    r = await api.client.get(
        "/v1/tenants/acme/agents", params={"capabilities": "translate"}, headers=h
    )
    assert [a["agent_id"] for a in r.json()["agents"]] == ["extra-1"]
    r = await api.client.get("/v1/tenants/acme/agents/nope-1", headers=h)
    assert r.status_code == 404
    assert r.json() == {"error": "Agent nope-1 not found", "code": "AGENT_NOT_FOUND"}


async def test_agent_body_validation(api: Api) -> None:
    h = api.auth("acme", "admin")
    bad = [
        agent_body("worker-1", extra_field=1),
        agent_body("w"),
        agent_body("worker 1"),
        agent_body("worker-1", capabilities=[]),
        agent_body("worker-1", capabilities=[{"name": "x", "level": 6}]),
        agent_body("worker-1", capabilities=[{"name": "x"}, {"name": "x"}]),
        agent_body("worker-1", capabilities=[{"name": "x", "level": 3, "bonus": 1}]),
        agent_body("worker-1", agent_type="wizard"),
        agent_body("worker-1", resource_requirements={"cpu": -1}),
        agent_body("worker-1", tags=["x" * 51]),
        agent_body("worker-1", tenant_id="other"),
        agent_body("worker-1", name="  "),
        agent_body("worker-1", metadata={"n": 2**64}),  # JSON storage holds 64-bit integers
    ]
    for body in bad:
        r = await api.client.post("/v1/tenants/acme/agents", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert set(r.json()) <= {"error", "code", "details"}
    assert (await api.client.get("/v1/tenants/acme/agents", headers=h)).json()["agents"] == []
    r = await api.client.post(
        "/v1/tenants/acme/agents",
        content=b"{not json",
        headers={**h, "content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["code"] == "VALIDATION_ERROR"


async def test_agent_lifecycle(api: Api) -> None:
    h = api.auth("acme", "orchestrator")
    await api.client.post("/v1/tenants/acme/agents", json=agent_body("worker-1"), headers=h)
    base = "/v1/tenants/acme/agents/worker-1"
    r = await api.client.post(f"{base}/pause", json={"reason": "maintenance"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "PAUSED"
    r = await api.client.post(f"{base}/pause", headers=h)
    assert r.status_code == 200  # PAUSED -> PAUSED is allowed by the domain table
    r = await api.client.post(f"{base}/resume", headers=h)
    assert r.json()["status"] == "AVAILABLE"
    r = await api.client.post(f"{base}/resume", headers=h)
    assert r.status_code == 409
    assert r.json()["code"] == "INVALID_TRANSITION"
    r = await api.client.post(f"{base}/terminate", headers=h)
    assert r.json()["status"] == "TERMINATED"
    r = await api.client.post(f"{base}/terminate", headers=h)
    assert r.status_code == 409
    r = await api.client.post("/v1/tenants/acme/agents/ghost-1/pause", headers=h)
    assert r.status_code == 404
    admin = api.auth("acme", "admin")
    # the API's own entries (actor: the token's subject): one success, one failure
    audit = await api.client.get(
        "/v1/tenants/acme/audit", params={"actor": "tester"}, headers=admin
    )
    actions = [e["action"] for e in audit.json()["entries"]]
    assert actions.count("agent_terminated") == 2
    assert "agent_created" in actions
    # the domain's entries join them on the same trail once the projector has run
    await api.ctx.caught_up()
    audit = await api.client.get("/v1/tenants/acme/audit", headers=admin)
    terminated = [e for e in audit.json()["entries"] if e["action"] == "agent_terminated"]
    assert len(terminated) == 3


async def test_tasks_submit_list_cancel_retry(api: Api) -> None:
    h = api.auth("acme", "orchestrator")
    r = await api.client.post(
        "/v1/tenants/acme/tasks",
        json={"capability": "summarize", "payload": {"text": "hi"}, "priority": "high"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["status"] == "offered"
    assert task["priority"] == 4
    tid = task["task_id"]
    r = await api.client.post(
        "/v1/tenants/acme/tasks", json={"capability": "summarize", "task_id": tid}, headers=h
    )
    assert r.status_code == 409
    r = await api.client.get("/v1/tenants/acme/tasks", params={"status": "offered"}, headers=h)
    assert [t["task_id"] for t in r.json()["tasks"]] == [tid]
    r = await api.client.get(f"/v1/tenants/acme/tasks/{tid}", headers=h)
    assert r.json()["payload"] == {"text": "hi"}
    r = await api.client.post(f"/v1/tenants/acme/tasks/{tid}/retry", headers=h)
    assert r.status_code == 409
    r = await api.client.post(
        f"/v1/tenants/acme/tasks/{tid}/cancel", json={"reason": "no"}, headers=h
    )
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    r = await api.client.post(f"/v1/tenants/acme/tasks/{tid}/cancel", headers=h)
    assert r.status_code == 409

    dead = await api.ctx.bus.execute(SubmitTask("acme", "summarize", {}, max_attempts=1))
    await api.ctx.bus.execute(FailTask("acme", str(dead.aggregate_id), "boom", retryable=False))
    r = await api.client.post(f"/v1/tenants/acme/tasks/{dead.aggregate_id}/retry", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "offered"
    for bad in (
        {"capability": "bad cap"},
        {"capability": "x", "priority": 9},
        {"capability": "x", "timeout_seconds": 0},
        {"capability": "x", "max_attempts": 7},
        {"capability": "x", "surprise": True},
    ):
        r = await api.client.post("/v1/tenants/acme/tasks", json=bad, headers=h)
        assert r.status_code == 422, bad
    r = await api.client.get("/v1/tenants/acme/tasks", params={"status": "bogus"}, headers=h)
    assert r.status_code == 422


async def test_messages_publish_and_read_back(api: Api) -> None:
    h = api.auth("acme", "admin")
    env = envelope("acme", {"secret": SECRET_MARK})
    r = await api.client.post("/v1/tenants/acme/messages", json=env, headers=h)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["subject"] == "am.acme.evt.note.added"
    mid = accepted["message_id"]
    assert mid == env["metadata"]["id"]
    r = await api.client.post("/v1/tenants/acme/messages", json=env, headers=h)
    assert r.status_code == 409
    r = await api.client.get(f"/v1/tenants/acme/messages/{mid}", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["envelope"]["payload"] == {"secret": SECRET_MARK}
    assert body["message_type"] == "note.added"
    # stored encrypted
    stored = await api.ctx.persistence.read_models.get_message(mid, "acme")
    assert stored is not None
    assert SECRET_MARK not in stored.payload
    pending = await api.ctx.persistence.store.outbox_pending(1000)
    assert any(row.subject == "am.acme.evt.note.added" for row in pending)
    bad_envs = [
        {**env, "tenant_id": "other"},
        {**env, "extra": 1},
        {**env, "metadata": {"id": "bad id!"}},
        {**env, "metadata": {"type": "no spaces allowed"}},
        {**env, "payload": "not an object"},
    ]
    for bad in bad_envs:
        r = await api.client.post("/v1/tenants/acme/messages", json=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
    r = await api.client.get(f"/v1/tenants/acme/messages/{uuid.uuid4()}", headers=h)
    assert r.status_code == 404
    assert r.json()["code"] == "MESSAGE_NOT_FOUND"


async def test_minimal_message_takes_the_paths_tenant_and_a_new_id(api: Api) -> None:
    h = api.auth("acme", "admin")
    r = await api.client.post("/v1/tenants/acme/messages", json={}, headers=h)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["subject"] == "am.acme.evt.message"
    r = await api.client.get(f"/v1/tenants/acme/messages/{accepted['message_id']}", headers=h)
    assert r.status_code == 200
    assert r.json()["envelope"]["tenant_id"] == "acme"
    assert r.json()["envelope"]["metadata"]["id"] == accepted["message_id"]


async def test_tenants(api: Api) -> None:
    r = await api.client.post(
        "/v1/tenants", json={"tenant_id": "acme", "name": "Acme"}, headers=api.root
    )
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "acme"
    r = await api.client.post("/v1/tenants", json={"name": "Acme"}, headers=api.root)
    assert r.status_code == 409
    r = await api.client.post("/v1/tenants", json={"name": "Other"}, headers=api.root)
    other = r.json()["id"]
    r = await api.client.get("/v1/tenants", headers=api.root)
    assert [t["name"] for t in r.json()["tenants"]] == ["Acme", "Other"]
    r = await api.client.get("/v1/tenants/acme", headers=api.auth("acme", "observer"))
    assert r.json()["name"] == "Acme"
    r = await api.client.get(f"/v1/tenants/{other}", headers=api.auth("acme", "admin"))
    assert r.status_code == 403
    r = await api.client.get("/v1/tenants", headers=api.auth("acme", "admin"))
    assert r.status_code == 403
    r = await api.client.get("/v1/tenants/missing", headers=api.root)
    assert r.status_code == 404


async def test_flat_errors_from_the_framework(api: Api) -> None:
    r = await api.client.get("/no/such/path")
    assert r.status_code == 404
    assert r.json() == {"error": "Not Found", "code": "NOT_FOUND"}
    assert "X-Request-ID" in r.headers
    r = await api.client.delete("/health")
    assert r.status_code == 405
    assert r.json()["code"] == "METHOD_NOT_ALLOWED"
    r = await api.client.get("/v1/tenants/acme/agents", params={"limit": 0}, headers=api.root)
    assert r.status_code == 422
    assert set(r.json()) == {"error", "code", "details"}
    r = await api.client.get("/v1/tenants/acme/agents")
    assert r.status_code == 401
    assert r.json() == {"error": "Authentication required", "code": "AUTH_REQUIRED"}
    assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_api_versioning(api: Api) -> None:
    r = await api.client.get("/health", headers={"X-API-Version": "1.1"})
    assert r.headers["X-API-Version"] == "1.1"
    assert r.headers["X-API-Supported-Versions"] == "1.0, 1.1"
    r = await api.client.get("/health", params={"api_version": "2.0"})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "UNSUPPORTED_VERSION"
    assert body["details"]["supported_versions"] == ["1.0", "1.1"]
    assert "X-Request-ID" in r.headers


async def test_cors(api: Api) -> None:
    ok = "http://localhost:3000"
    r = await api.client.options(
        "/v1/tenants/acme/agents",
        headers={"Origin": ok, "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == ok
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    r = await api.client.options(
        "/v1/tenants/acme/agents",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 403
    assert "Access-Control-Allow-Origin" not in r.headers
    r = await api.client.get("/health", headers={"Origin": ok})
    assert r.headers["Access-Control-Allow-Origin"] == ok
    assert "Origin" in r.headers["Vary"]
    r = await api.client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


async def test_gzip_for_large_responses(api: Api) -> None:
    seed = await seed_tenant(api, "acme")
    r = await api.client.get(
        "/v1/tenants/acme/tasks", headers={**api.root, "Accept-Encoding": "gzip"}
    )
    assert r.status_code == 200
    assert r.headers.get("content-encoding") == "gzip"
    assert seed.task_id in r.text


async def test_unhandled_error_is_a_flat_500_with_request_id(tmp_path: Path) -> None:
    from agentmesh.api.fastapi_app import create_app
    from tests.unit.api.conftest import make_settings, running

    app = create_app(make_settings(tmp_path))

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    async for api in running(app):
        r = await api.client.get("/boom")
        assert r.status_code == 500
        assert r.json() == {"error": "internal error", "code": "INTERNAL_ERROR"}
        assert "secret internals" not in r.text
        assert "X-Request-ID" in r.headers
