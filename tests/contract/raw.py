"""Publishing bytes that are not an envelope, for the malformed-input tests.

The product never publishes anything but envelopes, so this lives with the tests and
reaches into each transport family's send primitive.
"""

from __future__ import annotations

import uuid

from agentmesh.transports import Transport
from agentmesh.transports.broker import BrokerTransport
from agentmesh.transports.memory import MemoryTransport
from agentmesh.transports.nats import NatsTransport


async def publish_raw(transport: Transport, subject: str, data: bytes, *, durable: bool) -> None:
    """Publish ``data`` as it is (a fresh dedupe id each time)."""
    msg_id = uuid.uuid4().hex
    if isinstance(transport, MemoryTransport):
        transport._deliver(subject, data, None)
        if durable:
            transport.broker.store(subject, data, msg_id)
    elif isinstance(transport, NatsTransport):
        if durable:
            await transport._js_publish(subject, data, msg_id)
        else:
            await transport.nc.publish(subject, data)
    elif isinstance(transport, BrokerTransport):
        transport.require_connected()
        transport.check(subject, data)
        await transport._send(subject, data, durable=durable, msg_id=msg_id)
    else:
        raise TypeError(f"no raw publish for {type(transport).__name__}")
