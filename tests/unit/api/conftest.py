"""Fixtures of the API unit tests: an app on the in-memory store, driven in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI

from agentmesh.api.context import ApiContext
from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.config import Settings
from agentmesh.security.rbac import PLATFORM_TENANT

SECRET = "unit-test-secret-" + "0123456789abcdef" * 3


def make_settings(tmp_path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "jwt_secret_key": SECRET,
        "encryption_key": Fernet.generate_key().decode(),
        "database_url": "memory://",
        "environment": "testing",
        "agentmesh_data_dir": tmp_path,
    }
    base.update(kw)
    return Settings(**base)


@dataclass
class Api:
    """An app, its context and an HTTP client; ``token()`` mints tokens."""

    app: FastAPI
    client: httpx.AsyncClient

    @property
    def ctx(self) -> ApiContext:
        ctx = self.app.state.ctx
        assert isinstance(ctx, ApiContext)
        return ctx

    def token(self, tenant: str, *roles: str, sub: str = "tester") -> str:
        return self.ctx.tokens.create(sub, tenant, roles or ("admin",))

    def auth(self, tenant: str, *roles: str, sub: str = "tester") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(tenant, *roles, sub=sub)}"}

    @property
    def root(self) -> dict[str, str]:
        """A platform admin."""
        return self.auth(PLATFORM_TENANT, "admin", sub="root")


async def running(app: FastAPI) -> AsyncIterator[Api]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Api(app, c)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    app = create_app(make_settings(tmp_path), options=ApiOptions(rate_limit_enabled=False))
    async for a in running(app):
        yield a


def agent_body(agent_id: str, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agent_id": agent_id,
        "name": f"agent {agent_id}",
        "capabilities": [{"name": "summarize", "level": 4.0}],
    }
    body.update(kw)
    return body
