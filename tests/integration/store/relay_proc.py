"""A relay process for the SIGKILL test: ``python -m tests.integration.store.relay_proc
<database url> <transport url>``. Prints ``ready`` once connected, then relays forever."""

from __future__ import annotations

import asyncio
import sys

from agentmesh.store import create_event_store
from agentmesh.store.outbox import OutboxRelay
from agentmesh.transports import create_transport


async def main(db_url: str, transport_url: str) -> None:
    store = create_event_store(db_url)
    await store.connect()
    transport = create_transport(transport_url)
    await transport.connect()
    print("ready", flush=True)
    relay = OutboxRelay(store, transport, batch_size=5, interval=0.01)
    await relay.run(asyncio.Event())  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
