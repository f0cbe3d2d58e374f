"""schemathesis over the whole OpenAPI document: every operation, generated inputs, the
default checks (no server error, documented status codes, content types, response schemas
and headers, Allow headers, schema-violating requests rejected), a platform-admin token."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.security.rbac import PLATFORM_TENANT
from tests.unit.api.conftest import agent_body, make_settings

pytestmark = pytest.mark.e2e


APP = create_app(
    make_settings(Path(tempfile.mkdtemp(prefix="agentmesh-st-"))),
    options=ApiOptions(rate_limit_enabled=False),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def token() -> Iterator[str]:
    with TestClient(APP) as client:  # runs the lifespan (store, projector) for the module
        root = APP.state.ctx.tokens.create("root", PLATFORM_TENANT, ["admin"])
        h = {"Authorization": f"Bearer {root}"}
        tenant = client.post("/v1/tenants", json={"tenant_id": "acme", "name": "Acme"}, headers=h)
        assert tenant.status_code == 201
        agent = client.post("/v1/tenants/acme/agents", json=agent_body("worker-1"), headers=h)
        assert agent.status_code == 201
        yield root


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case: Any, token: str) -> None:
    # positive_data_acceptance is left out on purpose: some schema-valid bodies break rules
    # a schema cannot say (a body's tenant_id must equal the path's) and get a clear 4xx
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
