"""Events and task documents written before ``max_retries`` became ``max_attempts`` still
load: attempts = retries + 1, in the event codec and in the task read model."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson

from agentmesh.commands import GetTask, build_bus
from agentmesh.commands.streams import task_stream
from agentmesh.domain import TaskAggregate, TaskSubmittedEvent, event_from_json
from agentmesh.domain.events import iso, utcnow
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.base import NewEvent
from agentmesh.store.documents import task_doc
from agentmesh.store.persistence import open_persistence


def _old_submitted(task_id: str, tenant: str, max_retries: int) -> dict[str, object]:
    """A ``task.submitted`` body as the store held it before the rename."""
    now = iso(utcnow())
    return {
        "event_type": "TaskSubmitted",
        "event_id": str(uuid.uuid4()),
        "aggregate_id": task_id,
        "tenant_id": tenant,
        "occurred_at": now,
        "task_type": "summarize",
        "required_capabilities": ["summarize"],
        "payload": {"text": "old"},
        "priority": 3,
        "timeout_seconds": 300,
        "max_retries": max_retries,
        "submitted_at": now,
    }


def test_old_submitted_event_decodes_to_max_attempts() -> None:
    event = event_from_json(orjson.dumps(_old_submitted("t-old", "acme", 0)))
    assert isinstance(event, TaskSubmittedEvent)
    assert event.max_attempts == 1
    task = TaskAggregate.from_submitted(event)
    assert (task.max_attempts, task.retries_left) == (1, 0)
    assert "max_retries" not in event.to_dict()
    assert event.to_dict()["max_attempts"] == 1


async def test_old_events_and_documents_load_through_the_store(tmp_path: Path) -> None:
    crypto = EncryptionService(EncryptionService.generate_key())
    p = await open_persistence(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        body = orjson.dumps(_old_submitted("t-old", "acme", 2)).decode()
        old = NewEvent(str(uuid.uuid4()), "TaskSubmitted", iso(utcnow()), body)
        await p.store.append("acme", task_stream("t-old"), 0, [old])
        await p.projector.catch_up()
        bus = build_bus(p.store, p.read_models, crypto)
        doc = await bus.query(GetTask("acme", "t-old"))
        assert (doc["max_attempts"], doc["status"]) == (3, "submitted")
        assert "max_retries" not in doc

        # a read-model document written before the rename (max_retries, no max_attempts)
        stale = task_doc(
            TaskAggregate.replay(
                [e.decode() for e in await p.store.load("acme", task_stream("t-old"))]
            )
        )
        stale.pop("max_attempts")
        stale["max_retries"] = 5
        async with p.db.write() as c:
            await c.execute(
                "UPDATE tasks SET doc = ? WHERE tenant_id = ? AND task_id = ?",
                orjson.dumps(stale).decode(),
                "acme",
                "t-old",
            )
        doc = await bus.query(GetTask("acme", "t-old"))
        assert doc["max_attempts"] == 6
        assert "max_retries" not in doc
    finally:
        await p.close()
