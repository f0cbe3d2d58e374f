"""Sealing task data at rest: values, event bodies, documents and outbox envelopes."""

from __future__ import annotations

import orjson
import pytest

from agentmesh.envelope import Envelope
from agentmesh.security.crypto import DecryptionError, EncryptionService
from agentmesh.store.base import NewEvent, StoredEvent
from agentmesh.store.sealing import SEALED, Sealer


def test_values_and_documents_round_trip_and_rotate() -> None:
    old = EncryptionService.generate_key()
    sealer = Sealer(EncryptionService(old))
    doc = {"payload": {"text": "secret"}, "result": None, "status": "offered"}
    sealed = sealer.seal_fields(doc, ("payload", "result"))
    assert "secret" not in orjson.dumps(sealed).decode()
    assert sealed["result"] is None  # nothing to hide
    rotated = Sealer(EncryptionService(f"{EncryptionService.generate_key()},{old}"))
    assert rotated.open_fields(sealed, ("payload", "result")) == doc
    assert sealer.open({"text": "plain"}) == {"text": "plain"}  # unsealed data passes
    with pytest.raises(DecryptionError):
        Sealer(EncryptionService(EncryptionService.generate_key())).open(sealed["payload"])


def test_event_bodies_seal_only_what_a_task_carries() -> None:
    sealer = Sealer(EncryptionService(EncryptionService.generate_key()))
    body = orjson.dumps({"payload": {"text": "secret"}, "task_type": "work"}).decode()
    sealed = sealer.seal_event(NewEvent("e1", "TaskSubmitted", "2026-01-01T00:00:00+00:00", body))
    assert "secret" not in sealed.data
    assert SEALED in sealed.data
    assert "work" in sealed.data
    other = NewEvent("e2", "AgentPaused", "2026-01-01T00:00:00+00:00", '{"reason": "x"}')
    assert sealer.seal_event(other) is other
    stored = StoredEvent(
        1, "acme", "task-1", 1, "e1", "TaskSubmitted", sealed.occurred_at, sealed.data
    )
    assert orjson.loads(sealer.open_event(stored).data) == orjson.loads(body)


def test_outbox_envelopes_travel_sealed_and_open_for_the_relay() -> None:
    sealer = Sealer(EncryptionService(EncryptionService.generate_key()))
    env = Envelope.create("task.offered", {"text": "secret"}, tenant_id="acme")
    sealed = sealer.seal_envelope(env)
    assert sealed.security == {"encrypted": True, "at_rest": True}
    assert set(sealed.payload) == {"ciphertext"}
    assert b"secret" not in sealed.encode()
    opened = Envelope.decode(sealer.open_envelope(sealed.encode()))
    assert opened.payload == {"text": "secret"}
    assert opened.security == {}
    assert opened.id == env.id
    plain = env.encode()
    assert sealer.open_envelope(plain) == plain
