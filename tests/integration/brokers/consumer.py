"""A durable consumer process for the kill-and-restart tests.

``python -m tests.integration.brokers.consumer <url> <subject> <group> <out-file>``: appends the
payload ``n`` of every handled envelope to ``out-file`` (flushed before the ack), slowly, so the
test can SIGKILL it mid-stream. ``<out-file>.ready`` appears once its durable group exists.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TextIO

from agentmesh.transports import Message, SubscribeOptions, create_transport


async def main(url: str, subject: str, group: str, out: TextIO) -> None:
    transport = create_transport(url)
    await transport.connect()

    async def handle(msg: Message) -> None:
        await asyncio.sleep(0.01)
        out.write(f"{msg.payload['n']}\n")
        out.flush()
        os.fsync(out.fileno())

    options = SubscribeOptions(ack_wait=2.0, max_in_flight=4)
    await transport.subscribe(subject, handle, durable=group, options=options)
    # the group exists: what is published from now on is kept
    await asyncio.to_thread(Path(f"{out.name}.ready").touch)
    await asyncio.Event().wait()


if __name__ == "__main__":
    with open(sys.argv[4], "a", buffering=1) as file:
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], file))
