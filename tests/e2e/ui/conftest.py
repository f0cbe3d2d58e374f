"""A live control plane for the UI tests: uvicorn on a free 127.0.0.1 port in a thread,
SQLite store, the security level of the given ``ENVIRONMENT``."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from fastapi import FastAPI

from agentmesh.api.context import ApiContext
from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions, WsLimits
from agentmesh.config import Settings
from agentmesh.security.rbac import PLATFORM_TENANT
from agentmesh.security.tokens import TokenService, token_service_from_settings
from tests.e2e.api.conftest import Served, serve
from tests.unit.api.conftest import agent_body

SECRET = "ui-e2e-secret-" + "u" * 50
OPTIONS = ApiOptions(
    ws=WsLimits(ping_interval=0.5, pong_timeout=1.0, auth_timeout=5),
    feed_interval=0.05,
    metrics_interval=0.5,
)


@dataclass
class Plane:
    """A served control plane, its app, the loop it runs on and a token minter."""

    url: str
    app: FastAPI
    tokens: TokenService
    served: Served

    @property
    def ctx(self) -> ApiContext:
        ctx = self.app.state.ctx
        assert isinstance(ctx, ApiContext)
        return ctx

    def token(self, tenant: str, *roles: str, sub: str = "alice") -> str:
        return self.tokens.create(sub, tenant, roles or ("admin",))

    def client(self, tenant: str = PLATFORM_TENANT, *roles: str, sub: str = "root") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(tenant, *roles, sub=sub)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def on_loop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop (the hub's queues belong to it)."""
        return asyncio.run_coroutine_threadsafe(coro, self.served.loop).result(10)

    def stop(self) -> None:
        self.served.stop()


def settings_for(tmp_path: Path, environment: str) -> Settings:
    return Settings(
        jwt_secret_key=SECRET,
        encryption_key=Fernet.generate_key().decode(),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'agentmesh.db'}",
        environment=environment,
        agentmesh_data_dir=tmp_path,
    )


def start_plane(tmp_path: Path, environment: str) -> Plane:
    """Serve a control plane and seed tenant ``acme`` with the agent ``worker-1``."""
    settings = settings_for(tmp_path, environment)
    app = create_app(settings, options=OPTIONS)
    served = serve(app)
    plane = Plane(served.url, app, token_service_from_settings(settings), served)
    with plane.client() as root:
        r = root.post("/v1/tenants", json={"tenant_id": "acme", "name": "Acme"})
        assert r.status_code == 201, r.text
        r = root.post("/v1/tenants/acme/agents", json=agent_body("worker-1"))
        assert r.status_code == 201, r.text
    return plane
