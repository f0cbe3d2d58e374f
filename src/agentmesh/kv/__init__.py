"""Durable key-value state with compare-and-set (see :mod:`agentmesh.kv.base`)."""

from __future__ import annotations

from agentmesh.errors import NotSupported
from agentmesh.kv.base import KeyValueStore, KvEntry, KvWatch, WatchHandler
from agentmesh.kv.memory import MemoryKV
from agentmesh.transports import Transport
from agentmesh.transports.base import KeyValueHost


def open_kv(transport: Transport, bucket: str) -> KeyValueStore:
    """The key-value bucket that lives where ``transport`` keeps its durable data.

    NATS: a JetStream KV bucket; ``memory://``: a bucket shared by every transport of the
    same in-process broker (the transports that are a
    :class:`~agentmesh.transports.base.KeyValueHost`). Other brokers raise
    :class:`~agentmesh.errors.NotSupported`.
    """
    if isinstance(transport, KeyValueHost):
        return transport.key_value(bucket)
    raise NotSupported(
        f"no key-value store for {transport.url}: the blackboard and swarm need NATS or memory://"
    )


__all__ = ["KeyValueStore", "KvEntry", "KvWatch", "MemoryKV", "WatchHandler", "open_kv"]
