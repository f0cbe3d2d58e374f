"""A real control plane: uvicorn on a free 127.0.0.1 port in a thread, SQLite store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
class Served:
    """An ASGI app served by uvicorn on a free 127.0.0.1 port, in a thread with its own
    event loop (kept, so tests can run coroutines on it)."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive()
        self.loop.close()


def serve(app: Any, **config: Any) -> Served:
    """Serve ``app`` (its lifespan on) and wait until it accepts connections."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **config
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(),), name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the control plane did not start")
        time.sleep(0.02)
    return Served(f"http://127.0.0.1:{port}", server, thread, loop)


@dataclass
class LiveServer:
    url: str
    ws_url: str
    tokens: TokenService
    served: Served

    def token(self, tenant: str, *roles: str, sub: str = "tester") -> str:
        return self.tokens.create(sub, tenant, roles or ("admin",))

    def auth(self, tenant: str, *roles: str, sub: str = "tester") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(tenant, *roles, sub=sub)}"}


def start_server(settings: Settings, options: ApiOptions) -> LiveServer:
    served = serve(create_app(settings, options=options), ws="websockets-sansio")
    ws_url = served.url.replace("http://", "ws://", 1) + "/ws"
    return LiveServer(served.url, ws_url, token_service_from_settings(settings), served)


def stop_server(live: LiveServer) -> None:
    live.served.stop()


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
