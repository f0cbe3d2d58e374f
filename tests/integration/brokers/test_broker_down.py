"""Broker down -> typed ``BrokerUnavailable`` within the timeout -> the agent's breaker opens ->
broker back -> publishing (and delivery) resumes by itself, with no reconnect call.

Each case runs its own broker on a fixed free port, kills it by PID with SIGKILL and starts
it again on the same port (pulsar-lite reopens its RocksDB directory; Redis starts empty).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from agentmesh import subjects
from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.errors import BrokerUnavailable, CircuitBreakerOpenException
from agentmesh.mesh import Mesh
from agentmesh.resilience import CircuitState
from agentmesh.runtime.context import TaskContext
from agentmesh.transports import create_transport
from tests.contract.brokers import Server, free_port, pulsar_server, redis_server
from tests.helpers import Collector, eventually

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT = 1.0

BROKERS: dict[str, tuple[Callable[[Path, int], Server], str]] = {
    "redis": (redis_server, "redis://127.0.0.1:{port}/0"),
    "pulsar": (pulsar_server, "pulsar://127.0.0.1:{port}"),
}


@pytest.mark.parametrize("broker", list(BROKERS))
async def test_broker_down_opens_the_breaker_and_publishing_resumes_by_itself(
    broker: str, tmp_path: Path
) -> None:
    make_server, template = BROKERS[broker]
    port = free_port()
    server = make_server(tmp_path, port).start()
    url = template.format(port=port)
    transport = create_transport(url, connect_timeout=CONNECT_TIMEOUT)
    settings = Settings(agentmesh_data_dir=tmp_path)  # type: ignore[call-arg]
    mesh = Mesh(transport, tenant="t" + uuid.uuid4().hex[:10], settings=settings)

    @mesh.agent("guarded", capabilities=["guard"])
    async def guarded(task: TaskContext) -> None:
        return None

    subject = subjects.task(mesh.tenant, "after-outage")
    got = Collector()
    try:
        await transport.connect()
        await transport.subscribe(subject, got, durable="survivor")
        await guarded.publish_guarded(
            subject, Envelope.create("x", {"n": 0}, tenant_id=mesh.tenant), durable=True
        )
        await got.wait_for(1)

        server.kill()  # SIGKILL by PID: the broker is gone
        threshold = guarded.breaker.config.failure_threshold
        for i in range(threshold):
            probe = Envelope.create("x", {"n": -1 - i}, tenant_id=mesh.tenant)
            start = time.monotonic()
            with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}"):
                await guarded.publish_guarded(subject, probe, durable=True)
            assert time.monotonic() - start < CONNECT_TIMEOUT + 1.0  # typed error, in time
        assert guarded.breaker.state == CircuitState.OPEN
        start = time.monotonic()
        with pytest.raises(CircuitBreakerOpenException):  # fails fast, no broker round trip
            await guarded.publish_guarded(subject, Envelope.create("x", {}, tenant_id=mesh.tenant))
        assert time.monotonic() - start < 0.1

        server = make_server(tmp_path, port).start()  # the broker is back on the same port
        after = Envelope.create("x", {"n": 1}, tenant_id=mesh.tenant)
        deadline = time.monotonic() + guarded.breaker.config.recovery_timeout_seconds + 15
        while True:  # what a caller with retry does: no reconnect, no new transport
            try:
                await guarded.publish_guarded(subject, after, durable=True)
                break
            except (CircuitBreakerOpenException, BrokerUnavailable):
                assert time.monotonic() < deadline, "publishing did not resume"
                await asyncio.sleep(0.25)
        for n in (2, 3):
            await guarded.publish_guarded(
                subject, Envelope.create("x", {"n": n}, tenant_id=mesh.tenant), durable=True
            )
        assert guarded.breaker.state == CircuitState.CLOSED
        await eventually(lambda: {1, 2, 3} <= {m.payload["n"] for m in got.messages}, timeout=15)
    finally:
        await transport.close()
        server.stop()
