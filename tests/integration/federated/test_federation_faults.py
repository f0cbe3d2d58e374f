"""Faults inside one round (in-process mesh): a participant that drops out after the
masks were agreed and delivers only after the deadline, and updates that must be refused
(wrong shape, NaN/Inf, unknown sender, replayed or stale round), each with its reason in
the event store and the audit trail, while the round goes on."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import numpy as np
import pytest

from agentmesh.federated import history, secure
from agentmesh.federated.arrays import unpack
from agentmesh.federated.coordinator import FederatedCoordinator
from agentmesh.federated.data import DataSpec, shard_of
from agentmesh.federated.participant import FederatedParticipant
from agentmesh.federated.protocol import (
    METRICS_REQUEST,
    MODEL_SYNC,
    REGISTRATION,
    TRAINING_REQUEST,
    FederationConfig,
    b64,
    unb64,
)
from agentmesh.mesh import Mesh
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.context import TaskContext
from agentmesh.store.audit_trail import audit_entry
from agentmesh.store.memory import MemoryEventStore


class Straggler(FederatedParticipant):
    """Trains like everyone (its masks are in the round) but delivers only after the
    round was committed without it."""

    def __init__(self, *a: Any, committed: asyncio.Event, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.committed = committed
        self.answers: list[dict[str, Any]] = []

    async def _train_and_send(self, context: str, job: dict[str, Any], params: Any) -> None:
        await self.committed.wait()
        await super()._train_and_send(context, job, params)


async def test_dropout_after_masking_is_recovered_and_its_late_update_refused() -> None:
    tenant = "fl" + uuid.uuid4().hex[:8]
    mesh = Mesh(f"memory://{tenant}", tenant=tenant)
    store = MemoryEventStore("memory://")
    await store.connect()
    sent: dict[tuple[str, int], np.ndarray] = {}
    committed = asyncio.Event()
    config = FederationConfig(
        job="coord", rounds=1, round_timeout=1.0, min_participants=5, secure=True
    )
    coord = mesh.add(FederatedCoordinator(mesh, "coord", store, config))
    for i in range(1, 6):
        X, y = shard_of(DataSpec(i, 5, 0.5, 0))
        kind = Straggler if i == 3 else FederatedParticipant
        extra = {"committed": committed} if i == 3 else {}
        mesh.add(
            kind(
                mesh,
                f"fl-p{i}",
                "coord",
                X,
                y,
                register_interval=0.2,
                observe=lambda r, v, pid=f"fl-p{i}": sent.__setitem__((pid, r), v),
                **extra,
            )
        )
    async with mesh:
        await asyncio.wait_for(coord.finished.wait(), 30)
        committed.set()
        rows = await history.round_rows(store, tenant, "coord")
        for _ in range(200):  # the straggler's late update is refused and recorded
            rows = await history.round_rows(store, tenant, "coord")
            if rows[-1]["rejected"]:
                break
            await asyncio.sleep(0.02)
    last = rows[-1]
    assert last["dropped"] == ["fl-p3"]
    assert last["participants"] == ["fl-p1", "fl-p2", "fl-p4", "fl-p5"]
    assert last["rejected"] == 1
    events = [e.decode() for e in await store.load(tenant, history.STREAM)]
    v0, v1 = (unpack(e.params, "float64") for e in events[:2])  # type: ignore[attr-defined]
    true = [sent[(p, 1)] for p in last["participants"]]
    plain = sum(t[:-2] for t in true) / sum(t[-2] for t in true)  # weighted FedAvg
    assert np.abs((v1 - v0) - plain).max() < 1e-6
    assert "round 1" in events[-1].reason  # type: ignore[attr-defined]
    await store.close()


@pytest.mark.parametrize("secure_mode", [False, True], ids=["plain", "secure"])
async def test_bad_updates_are_refused_with_reason_and_audited(secure_mode: bool) -> None:
    tenant = "fl" + uuid.uuid4().hex[:8]
    mesh = Mesh(f"memory://{tenant}", tenant=tenant)
    store = MemoryEventStore("memory://")
    await store.connect()
    config = FederationConfig(
        job="coord", rounds=2, round_timeout=1.5, min_participants=4, secure=secure_mode
    )
    coord = mesh.add(FederatedCoordinator(mesh, "coord", store, config))
    for i in (1, 2):
        X, y = shard_of(DataSpec(i, 2, None, 0))
        mesh.add(FederatedParticipant(mesh, f"fl-p{i}", "coord", X, y, register_interval=0.2))
    requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    key = secure.new_private_key()

    async def intruder(task: TaskContext) -> dict[str, Any]:
        if task.envelope.type == TRAINING_REQUEST:
            await requests.put(task.payload)
        return {"accepted": True}  # never reveals pair keys: recovery drops it too

    async def silent(task: TaskContext) -> dict[str, Any]:
        return {"accepted": True}  # acks its rounds, never delivers: they stay open

    mesh.add(AgentRuntime(mesh, "fl-intruder", intruder, capabilities="x"))
    mesh.add(AgentRuntime(mesh, "fl-silent", silent, capabilities="x"))

    def update(req: dict[str, Any], vector: np.ndarray, who: str = "fl-intruder") -> dict[str, Any]:
        sealed = secure.seal(
            key, unb64(req["coordinator_key"], "k"), vector.tobytes(), f"{req['context']}|{who}"
        )
        return {
            "phase": "update",
            "round": req["round"],
            "context": req["context"],
            "participant": who,
            "sealed": b64(sealed),
        }

    async def register() -> None:  # like a participant: again and again (rejoins)
        while True:
            for who in ("fl-intruder", "fl-silent"):
                registration = {
                    "participant": who,
                    "public_key": b64(secure.public_bytes(key)),
                    "samples": 100,
                    "features": 64,
                    "classes": 10,
                }
                await mesh.send("coord", registration, type=REGISTRATION)
            await asyncio.sleep(0.2)

    announced: list[Any] = []

    async def on_model(env: Any) -> None:
        announced.append((env.type, env.payload))

    async with mesh:
        await mesh.on_event("federated.model", on_model)
        registering = asyncio.create_task(register())
        first = await asyncio.wait_for(requests.get(), 10)
        size = first["params"]["size"] + (2 if secure_mode else 1)
        contribution = np.zeros(size)
        contribution[-1] = 100.0  # samples
        if secure_mode:  # weight 1 (average), samples 100, masked against the roster
            contribution[-2] = 1.0
            roster = {p: unb64(k, "key") for p, k in first["roster"].items()}
            good = secure.mask(
                secure.encode(contribution), "fl-intruder", key, roster, first["context"]
            )
            cases = [np.zeros(size + 3, dtype=np.uint64), good, good]
        else:
            good = contribution
            cases = [np.zeros(size + 3), np.full(size, np.nan), good, good]
        answers = [
            await mesh.send("coord", update(first, vector), type=MODEL_SYNC) for vector in cases
        ]
        ghost = update(first, good, who="fl-ghost")  # not in the roster
        answers.append(await mesh.send("coord", ghost, type=MODEL_SYNC))
        second = await asyncio.wait_for(requests.get(), 10)  # round 1 went on
        answers.append(await mesh.send("coord", update(first, good), type=MODEL_SYNC))  # stale
        await asyncio.wait_for(coord.finished.wait(), 20)
        metrics = await mesh.send("coord", {}, type=METRICS_REQUEST)
        registering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await registering
        assert second["round"] == first["round"] + 1
    assert [r["model_version"] for r in metrics["rounds"]] == [0, 1, 2]
    assert (MODEL_SYNC, {"phase": "model", "job": "coord", "round": 2, "model_version": 2}) in [
        (t, {k: p[k] for k in ("phase", "job", "round", "model_version")}) for t, p in announced
    ]
    reasons = [a.get("reason", "") for a in answers]
    assert "wrong shape" in reasons[0]
    if not secure_mode:
        assert "NaN or Inf" in reasons.pop(1)
    assert sum(bool(a["accepted"]) for a in answers) == 1
    assert reasons[1] == ""
    assert "replayed update" in reasons[2]
    assert "unknown participant" in reasons[3]
    assert "stale update for round 1" in reasons[4]
    stored = await store.load(tenant, history.STREAM)
    rejected = [s for s in stored if s.event_type == "FederatedUpdateRejected"]
    assert len(rejected) == sum(1 for a in answers if not a["accepted"])
    entry = audit_entry(rejected[0], rejected[0].decode())
    assert entry is not None
    assert (entry.action, entry.status, entry.actor) == ("message_failed", "failure", "fl-intruder")
    assert "wrong shape" in entry.details["reason"]
    rows = await history.round_rows(store, tenant, "coord")
    assert [r["status"] for r in rows] == ["committed"] * 3  # every round went on
    await store.close()
