"""A live control plane for the UI tests: uvicorn on a free 127.0.0.1 port in a thread,
SQLite store, the security level of the given ``ENVIRONMENT``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet
from fastapi import FastAPI

from agentmesh.api.context import ApiContext
from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions, WsLimits
from agentmesh.config import Settings
from agentmesh.runtime.embedded import free_port
from agentmesh.security.rbac import PLATFORM_TENANT
from agentmesh.security.tokens import TokenService, token_service_from_settings
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
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

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
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive()
        self.loop.close()


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
    port = free_port()
    app = create_app(settings, options=OPTIONS)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(),), name=f"ui-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the control plane did not start")
        time.sleep(0.02)
    plane = Plane(
        f"http://127.0.0.1:{port}", app, token_service_from_settings(settings), server, thread, loop
    )
    with plane.client() as root:
        r = root.post("/v1/tenants", json={"tenant_id": "acme", "name": "Acme"})
        assert r.status_code == 201, r.text
        r = root.post("/v1/tenants/acme/agents", json=agent_body("worker-1"))
        assert r.status_code == 201, r.text
    return plane
