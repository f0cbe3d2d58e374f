"""Event store, transactional outbox and projections (see :mod:`agentmesh.store.base`)."""

from agentmesh.errors import CorruptEventError
from agentmesh.store.base import (
    AppendResult,
    EventReader,
    EventStore,
    FullEventStore,
    NewEvent,
    OutboxMessage,
    OutboxRecord,
    OutboxStore,
    ProcessedMessages,
    StoredEvent,
    StreamAppend,
)
from agentmesh.store.factory import create_event_store

__all__ = [
    "AppendResult",
    "CorruptEventError",
    "EventReader",
    "EventStore",
    "FullEventStore",
    "NewEvent",
    "OutboxMessage",
    "OutboxRecord",
    "OutboxStore",
    "ProcessedMessages",
    "StoredEvent",
    "StreamAppend",
    "create_event_store",
]
