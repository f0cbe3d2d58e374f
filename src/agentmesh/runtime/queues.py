"""Queue depth monitoring: feeds ``agentmesh_messages_in_queue`` from the broker itself."""

from __future__ import annotations

import asyncio

from loguru import logger

from agentmesh.observability import metrics
from agentmesh.transports import Transport
from agentmesh.transports.base import QueueDepths


async def queue_depths(transport: Transport) -> dict[tuple[str, str], int]:
    """``{(tenant, "kind:consumer"): pending + unacked}``; empty if the transport can't tell."""
    if not isinstance(transport, QueueDepths):
        return {}
    return await transport.queue_depths()


async def monitor_queues(transport: Transport, interval: float = 5.0) -> None:
    """Update the queue gauge every ``interval`` seconds until cancelled."""
    while True:
        try:
            for (tenant, queue), depth in (await queue_depths(transport)).items():
                metrics.messages_in_queue.labels(tenant, queue).set(depth)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the gauge loop survives a failed probe
            logger.debug("queue depth probe failed: {}", exc)
        await asyncio.sleep(interval)
