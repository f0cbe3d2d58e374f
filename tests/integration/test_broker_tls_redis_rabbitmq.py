"""``rediss://`` and ``amqps://`` for real: a redis-server with a TLS port and a second
RabbitMQ node with an amqps listener, each with a certificate from a CA this test makes.
Our transports verify the server with the CA (in the URL, or ``AGENTMESH_TLS_CA_FILE``
through ``tls_ca_file``), carry work and requests, and refuse an unknown CA or plaintext."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.errors import BrokerUnavailable
from agentmesh.transports import Transport, create_transport
from agentmesh.transports.base import SubscribeOptions
from tests.helpers import eventually
from tests.integration.test_broker_tls import make_ca_and_server_cert
from tests.integration.tls_brokers import tls_rabbitmq, tls_redis

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_ca_and_server_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def rediss(
    certs: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    ca, cert, key = certs
    with tls_redis(tmp_path_factory.mktemp("redis-tls"), cert, key, ca) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def amqps(certs: tuple[Path, Path, Path]) -> Iterator[str]:
    ca, cert, key = certs
    with tls_rabbitmq(cert, key, ca) as port:
        yield f"127.0.0.1:{port}"


async def _round_trip(transport: Transport, tenant: str) -> None:
    """A durable message and a core request over ``transport``."""
    await transport.connect()
    got: list[Any] = []

    async def on_work(msg: Any) -> None:
        got.append(msg.envelope.payload)

    async def on_request(msg: Any) -> None:
        await msg.respond(Envelope.create("pong", {"n": msg.envelope.payload["n"]}))

    try:
        await transport.subscribe(
            f"am.{tenant}.task.work", on_work, durable="cap-work", options=SubscribeOptions()
        )
        await transport.subscribe(f"am.{tenant}.rpc.ping", on_request)
        await transport.publish(
            f"am.{tenant}.task.work", Envelope.create("w", {"n": 1}, tenant_id=tenant), durable=True
        )
        await eventually(lambda: got == [{"n": 1}], 20)
        reply = await transport.request(
            f"am.{tenant}.rpc.ping", Envelope.create("ping", {"n": 7}, tenant_id=tenant), timeout=10
        )
        assert reply.payload == {"n": 7}
    finally:
        await transport.close()


async def _refused(url: str) -> None:
    transport = create_transport(url, connect_timeout=5.0)
    with pytest.raises(BrokerUnavailable):
        await transport.connect()
    await transport.close()


async def _echo(task: TaskContext) -> dict[str, Any]:
    return {"echo": task.payload}


async def test_rediss_with_the_ca_in_the_url_or_the_settings(
    rediss: str, certs: tuple[Path, Path, Path]
) -> None:
    ca = certs[0]
    await _round_trip(create_transport(f"rediss://{rediss}/0?ssl_ca_certs={ca}"), "tls-r1")
    await _round_trip(create_transport(f"rediss://{rediss}/0", tls_ca_file=str(ca)), "tls-r2")


async def test_rediss_refuses_an_unknown_ca_and_plaintext(rediss: str) -> None:
    await _refused(f"rediss://{rediss}/0")  # the system trust store does not know the CA
    await _refused(f"redis://{rediss}/0")  # plaintext to the TLS port


async def test_amqps_with_the_ca_in_the_url_or_the_settings(
    amqps: str, certs: tuple[Path, Path, Path]
) -> None:
    ca = certs[0]
    url = f"amqps://guest:guest@{amqps}/"
    await _round_trip(create_transport(f"{url}?cafile={ca}&queue_expires=60"), "tls-a1")
    await _round_trip(create_transport(f"{url}?queue_expires=60", tls_ca_file=str(ca)), "tls-a2")


async def test_amqps_refuses_an_unknown_ca_and_plaintext(amqps: str) -> None:
    await _refused(f"amqps://guest:guest@{amqps}/")
    await _refused(f"amqp://guest:guest@{amqps}/")


async def test_a_mesh_over_rediss_takes_the_ca_from_settings(
    rediss: str, certs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    settings = Settings(agentmesh_data_dir=tmp_path, agentmesh_tls_ca_file=str(certs[0]))  # type: ignore[call-arg]
    mesh = Mesh(f"rediss://{rediss}/0", tenant="tls-m", settings=settings)
    mesh.agent("echo-1", capabilities=["echo"])(_echo)
    await mesh.start(registry=False)
    try:
        assert await mesh.request("echo", {"n": 1}, timeout=15) == {"echo": {"n": 1}}
        task_id = await mesh.submit("echo", {"n": 2})
        assert await mesh.wait_result(task_id, timeout=30) == {"echo": {"n": 2}}
    finally:
        await mesh.stop()
