"""The auth-callout nats-server, its callout service, tokens and a raw nats-py client
that records the server's asynchronous errors: shared by the bus-auth tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client as NATS

from agentmesh.runtime.embedded import EmbeddedNats
from agentmesh.security.bus_auth import BusAuthConfig
from agentmesh.security.bus_permissions import inbox_prefix
from agentmesh.security.nats_callout import NatsCalloutService
from agentmesh.security.tokens import TokenConfig, TokenService

SECRET = "k" * 32


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, BusAuthConfig]]:
    config = BusAuthConfig.load_or_create(tmp_path_factory.mktemp("bus") / "auth.json")
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), port=None, auth=config)
    url = server.start()
    yield url, config
    server.stop()


@pytest.fixture
def tokens() -> TokenService:
    return TokenService(TokenConfig(secret=SECRET))


@pytest.fixture
async def callout(
    auth_server: tuple[str, BusAuthConfig], tokens: TokenService
) -> AsyncIterator[NatsCalloutService]:
    url, config = auth_server
    service = NatsCalloutService(url, config, tokens)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def tenants() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"tenant-a-{suffix}", f"tenant-b-{suffix}"


class Client:
    """A raw nats-py connection that records the server's asynchronous errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Any = None

    async def connect(self, url: str, token: str | None, tenant: str | None = None) -> Client:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))

        self.nc = NATS()
        try:
            await self.nc.connect(
                url,
                token=token,
                error_cb=on_error,
                allow_reconnect=False,
                connect_timeout=3,
                inbox_prefix=inbox_prefix(tenant) if tenant else "_INBOX",
            )
        except nats.errors.Error:
            await self._release()
            raise
        return self

    async def _release(self) -> None:
        """nats-py leaves the socket of a refused CONNECT open; close it."""
        await self.nc.close()
        writer = getattr(self.nc, "_transport", None)
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):  # the server reset the refused connection
                await writer.wait_closed()

    def violation(self, subject: str) -> bool:
        return any(
            "permissions violation" in e.lower() and subject.lower() in e.lower()
            for e in self.errors
        )
