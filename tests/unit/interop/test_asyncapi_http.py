"""``/asyncapi.json``, the tenant's document with its live capabilities, and
``agentmesh asyncapi``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.mesh import Mesh
from tests.helpers import registry_knows, unique_tenant
from tests.unit.api.conftest import make_settings, running
from tests.unit.interop.test_asyncapi import CALC, _errors


async def test_served_documents(tmp_path: Path) -> None:
    tenant = unique_tenant()
    settings = make_settings(tmp_path, agentmesh_heartbeat_interval=0.1)
    mesh = Mesh(f"memory://{tenant}", tenant=tenant, settings=settings)

    @mesh.agent("calc-1", capabilities=["calculator"], capability_specs={"calculator": CALC})
    async def calc(task: Any) -> dict[str, Any]:
        return {}

    async with mesh:
        await registry_knows(mesh, "calc-1")
        app = create_app(settings, mesh=mesh, options=ApiOptions(rate_limit_enabled=False))
        async for api in running(app):
            public = await api.client.get("/asyncapi.json")
            assert public.status_code == 200
            assert _errors(public.json()) == []
            assert "task_calculator" not in public.json()["channels"]
            path = f"/v1/tenants/{tenant}/asyncapi.json"
            assert (await api.client.get(path)).status_code == 401
            other = await api.client.get(path, headers=api.auth("someone-else"))
            assert other.status_code == 403
            r = await api.client.get(path, headers=api.auth(tenant, "observer"))
            assert r.status_code == 200
            doc = r.json()
            assert _errors(doc) == []
            assert doc["channels"]["task_calculator"]["address"] == f"am.{tenant}.task.calculator"
            schemas = doc["components"]["schemas"]
            assert schemas["calculator_input"] == CALC["input_schema"]


def test_cli_prints_and_writes_the_document(tmp_path: Path) -> None:
    env = {**os.environ, "AGENTMESH_DATA_DIR": str(tmp_path), "NATS_URL": "nats://127.0.0.1:4222"}
    cli = [sys.executable, "-m", "agentmesh.cli.main", "asyncapi"]
    out = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60, check=True)
    doc = json.loads(out.stdout)
    assert _errors(doc) == []
    assert doc["servers"]["broker"] == {
        "host": "127.0.0.1:4222",
        "protocol": "nats",
        "description": doc["servers"]["broker"]["description"],
    }
    target = tmp_path / "mesh.asyncapi.json"
    subprocess.run([*cli, "-o", str(target)], env=env, timeout=60, check=True)
    assert json.loads(target.read_text())["channels"] == doc["channels"]
    bad = subprocess.run(
        [*cli, "--tenant", "no spaces"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1
    assert "invalid tenant id" in bad.stderr
    assert "Traceback" not in bad.stderr
