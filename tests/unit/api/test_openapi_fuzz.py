"""Property-based walk of every OpenAPI operation (a stand-in for schemathesis).

For each operation, hypothesis generates path parameters (seeded ids or schema values),
query parameters and bodies (valid from the schema, or invalid: wrong types, extra and
missing fields, random JSON), with a platform-admin token, a read-only token or none.
Every answer must be a documented status, never a 5xx, and errors have the flat body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.security.rbac import PLATFORM_TENANT
from tests.unit.api.catalog import envelope
from tests.unit.api.conftest import agent_body, make_settings
from tests.unit.api.schema_strategies import SchemaStrategies

SPEC = create_app(make_settings(Path("/nonexistent"))).openapi()
OPERATIONS = [
    (path, method)
    for path, item in SPEC["paths"].items()
    for method, op in item.items()
    if isinstance(op, dict) and "responses" in op
]
STRATS = SchemaStrategies(SPEC)


class Fixture:
    def __init__(
        self, client: TestClient, tokens: dict[str, str | None], seeds: dict[str, str]
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.seeds = seeds


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    app = create_app(
        make_settings(tmp_path_factory.mktemp("fuzz")), options=ApiOptions(rate_limit_enabled=False)
    )
    with TestClient(app) as client:
        ctx = app.state.ctx
        root = ctx.tokens.create("root", PLATFORM_TENANT, ["admin"])
        h = {"Authorization": f"Bearer {root}"}
        assert (
            client.post(
                "/v1/tenants", json={"tenant_id": "acme", "name": "Acme"}, headers=h
            ).status_code
            == 201
        )
        assert (
            client.post(
                "/v1/tenants/acme/agents", json=agent_body("worker-1"), headers=h
            ).status_code
            == 201
        )
        task = client.post(
            "/v1/tenants/acme/tasks", json={"capability": "summarize"}, headers=h
        ).json()
        msg = client.post("/v1/tenants/acme/messages", json=envelope("acme"), headers=h).json()
        tokens = {
            "root": root,
            "observer": ctx.tokens.create("obs", "acme", ["observer"]),
            "none": None,
        }
        seeds = {
            "tenant_id": "acme",
            "agent_id": "worker-1",
            "task_id": task["task_id"],
            "message_id": msg["message_id"],
        }
        yield Fixture(client, tokens, seeds)


def _path_value(param: dict[str, Any], seeds: dict[str, str]) -> st.SearchStrategy[str]:
    generated = STRATS.valid(param["schema"])
    seed = seeds.get(param["name"])
    return st.one_of(st.just(seed), generated) if seed else generated


@pytest.mark.parametrize(
    ("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS]
)
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_operation_answers_only_documented_statuses(
    fx: Fixture, path: str, method: str, data: st.DataObject
) -> None:
    op = SPEC["paths"][path][method]
    params = op.get("parameters", [])
    url = path
    for p in params:
        if p["in"] == "path":
            url = url.replace(
                "{" + p["name"] + "}", data.draw(_path_value(p, fx.seeds), label=p["name"])
            )
    query: dict[str, Any] = {}
    for p in params:
        if p["in"] == "query" and data.draw(st.booleans(), label=f"use {p['name']}"):
            valid = STRATS.valid(p["schema"]).filter(lambda v: v is not None)
            value = data.draw(st.one_of(valid, st.text(max_size=12)), label=p["name"])
            query[p["name"]] = value if not isinstance(value, bool) else str(value).lower()
    headers: dict[str, str] = {}
    who = data.draw(st.sampled_from(["root", "root", "root", "observer", "none"]), label="token")
    if fx.tokens[who]:
        headers["Authorization"] = f"Bearer {fx.tokens[who]}"
    body: Any = None
    content: bytes | None = None
    if "requestBody" in op:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        body = data.draw(st.one_of(STRATS.valid(schema), STRATS.invalid(schema)), label="body")
        content = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    r = fx.client.request(method.upper(), url, params=query, content=content, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text)
    assert str(r.status_code) in op["responses"], (r.status_code, r.text, sorted(op["responses"]))
    assert "X-Request-ID" in r.headers
    if r.status_code >= 400:
        err = r.json()
        assert isinstance(err["error"], str)
        assert isinstance(err["code"], str)
        assert set(err) <= {"error", "code", "details"}


def test_every_operation_documents_the_common_errors() -> None:
    for path, method in OPERATIONS:
        responses = SPEC["paths"][path][method]["responses"]
        assert {"400", "413", "429", "500"} <= set(responses), (path, method)
        if SPEC["paths"][path][method].get("security"):
            assert {"401", "403", "422"} <= set(responses), (path, method)
    assert SPEC["x-api-version"] == "1.0.0"
    assert SPEC["info"]["title"] == "AgentMesh EDA API"
