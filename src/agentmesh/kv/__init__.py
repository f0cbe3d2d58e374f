"""Durable key-value state with compare-and-set (see :mod:`agentmesh.kv.base`)."""

from __future__ import annotations

from agentmesh.kv.base import KeyValueStore, KvEntry, KvWatch, WatchHandler
from agentmesh.kv.memory import MemoryKV
from agentmesh.transports import Transport


def open_kv(transport: Transport, bucket: str) -> KeyValueStore:
    """The key-value bucket that lives where ``transport`` keeps its durable data.

    NATS: a JetStream KV bucket; ``memory://``: a bucket shared by every transport of the
    same in-process broker. Other brokers raise :class:`~agentmesh.errors.NotSupported`.
    """
    from agentmesh.errors import NotSupported
    from agentmesh.transports.memory import MemoryTransport
    from agentmesh.transports.nats import NatsTransport

    if isinstance(transport, NatsTransport):
        from agentmesh.kv.nats import NatsKV

        return NatsKV(transport, bucket)
    if isinstance(transport, MemoryTransport):
        return MemoryKV.for_broker(transport.url, bucket)
    raise NotSupported(
        f"no key-value store for {transport.url}: the blackboard and swarm need NATS or memory://"
    )


__all__ = ["KeyValueStore", "KvEntry", "KvWatch", "MemoryKV", "WatchHandler", "open_kv"]
