"""Transport implementations the contract suite runs against.

Add a transport by adding a factory to ``FACTORIES``: an async context manager that
yields a factory producing connected transports (several per test may be needed to
simulate several processes on one broker).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentmesh.transports import Transport, create_transport
from agentmesh.transports.memory import MemoryTransport
from tests.contract.brokers import (  # noqa: F401  (session fixtures)
    kafka_url,
    pubsub_url,
    pulsar_url,
    rabbitmq_url,
    redis_url,
    sqs_url,
)

TransportFactory = Callable[[], Awaitable[Transport]]


@contextlib.asynccontextmanager
async def _memory(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    yield f"memory://{uuid.uuid4().hex}"


@contextlib.asynccontextmanager
async def _nats(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    yield request.getfixturevalue("nats_url")


def _from_fixture(name: str) -> Callable[[pytest.FixtureRequest], Any]:
    @contextlib.asynccontextmanager
    async def factory(request: pytest.FixtureRequest) -> AsyncIterator[str]:
        yield request.getfixturevalue(name)

    return factory


FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "memory": _memory,
    "nats": _nats,
    "redis": _from_fixture("redis_url"),
    "rabbitmq": _from_fixture("rabbitmq_url"),
    "kafka": _from_fixture("kafka_url"),
    "sqs": _from_fixture("sqs_url"),
    "pulsar": _from_fixture("pulsar_url"),
    "pubsub": _from_fixture("pubsub_url"),
}


CONNECT_TIMEOUT = 30.0


@pytest.fixture(params=list(FACTORIES))
async def make_transport(request: pytest.FixtureRequest) -> AsyncIterator[TransportFactory]:
    created: list[Transport] = []
    async with FACTORIES[request.param](request) as url:

        async def factory() -> Transport:
            # generous: the emulators (moto, pulsar-lite) answer slowly on a loaded machine
            t = create_transport(url, connect_timeout=CONNECT_TIMEOUT)
            await t.connect()
            created.append(t)
            return t

        yield factory
        for t in created:
            await t.close()
    MemoryTransport.reset()


@pytest.fixture
async def transport(make_transport: TransportFactory) -> Transport:
    return await make_transport()
