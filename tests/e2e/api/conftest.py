"""A real control plane: uvicorn on a free 127.0.0.1 port in a thread, SQLite store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from cryptography.fernet import Fernet

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions, WsLimits
from agentmesh.config import Settings
from agentmesh.runtime.embedded import free_port
from agentmesh.security.tokens import TokenService, token_service_from_settings

SECRET = "e2e-secret-" + "s" * 53


@dataclass
class LiveServer:
    url: str
    ws_url: str
    tokens: TokenService
    server: uvicorn.Server
    thread: threading.Thread

    def token(self, tenant: str, *roles: str, sub: str = "tester") -> str:
        return self.tokens.create(sub, tenant, roles or ("admin",))

    def auth(self, tenant: str, *roles: str, sub: str = "tester") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(tenant, *roles, sub=sub)}"}


def start_server(settings: Settings, options: ApiOptions) -> LiveServer:
    port = free_port()
    app = create_app(settings, options=options)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the control plane did not start")
        time.sleep(0.02)
    return LiveServer(
        f"http://127.0.0.1:{port}",
        f"ws://127.0.0.1:{port}/ws",
        token_service_from_settings(settings),
        server,
        thread,
    )


def stop_server(live: LiveServer) -> None:
    live.server.should_exit = True
    live.thread.join(15)
    assert not live.thread.is_alive()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        jwt_secret_key=SECRET,
        encryption_key=Fernet.generate_key().decode(),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'agentmesh.db'}",
        environment="testing",
        agentmesh_data_dir=tmp_path,
    )
    options = ApiOptions(
        rate_limit_enabled=False,
        ws=WsLimits(per_user=5, per_tenant=20, ping_interval=0.4, pong_timeout=0.6, auth_timeout=2),
        feed_interval=0.05,
        metrics_interval=0.3,
    )
    server = start_server(settings, options)
    yield server
    stop_server(server)
