"""Coordinator and participants as agents of one in-process mesh (memory broker and
store): the model learns, secure aggregation hides each update, bad updates are refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from agentmesh.federated import history
from agentmesh.federated.coordinator import FederatedCoordinator
from agentmesh.federated.data import DataSpec, held_out, shard_of, train_test
from agentmesh.federated.model import TrainConfig, evaluate, init_params, train
from agentmesh.federated.participant import FederatedParticipant
from agentmesh.federated.privacy import DPConfig
from agentmesh.federated.protocol import FederationConfig
from agentmesh.mesh import Mesh
from agentmesh.store.memory import MemoryEventStore

ROUNDS = 20
EPOCHS = 5


def centralized_accuracy(seed: int = 0) -> float:
    X, y, X_test, y_test = train_test(seed)
    w = train(init_params(64, 10), X, y, TrainConfig(epochs=ROUNDS * EPOCHS))
    return evaluate(w, X_test, y_test)[0]


class Federation:
    def __init__(self, config: FederationConfig, alpha: float | None, n: int = 5) -> None:
        self.tenant = "fl" + uuid.uuid4().hex[:8]
        self.mesh = Mesh(f"memory://{self.tenant}", tenant=self.tenant)
        self.store = MemoryEventStore("memory://")
        self.received: dict[tuple[str, int], np.ndarray] = {}
        self.sent: dict[tuple[str, int], np.ndarray] = {}
        X_test, y_test = held_out(DataSpec(seed=0))
        self.coordinator = FederatedCoordinator(
            self.mesh,
            "coord",
            self.store,
            config,
            evaluate=lambda w: evaluate(w, X_test, y_test),
            observe=lambda pid, r, v: self.received.__setitem__((pid, r), v),
        )
        self.mesh.add(self.coordinator)
        self.participants = []
        for i in range(1, n + 1):
            X, y = shard_of(DataSpec(i, n, alpha, 0))
            pid = f"fl-p{i}"
            p = FederatedParticipant(
                self.mesh,
                pid,
                "coord",
                X,
                y,
                register_interval=0.2,
                observe=lambda r, v, pid=pid: self.sent.__setitem__((pid, r), v),
            )
            self.participants.append(self.mesh.add(p))

    async def rows(self) -> list[dict[str, Any]]:
        return await history.round_rows(self.store, self.tenant, "coord")


@pytest.fixture
async def federation(request: pytest.FixtureRequest) -> AsyncIterator[Federation]:
    config, alpha = request.param
    fed = Federation(config, alpha)
    await fed.store.connect()
    async with fed.mesh:
        yield fed
    await fed.store.close()


def cfg(**kw: Any) -> FederationConfig:
    return FederationConfig(job="coord", rounds=ROUNDS, round_timeout=10.0, **kw)


@pytest.mark.parametrize(
    "federation",
    [(cfg(secure=True), None), (cfg(secure=True), 0.5)],
    ids=["iid", "non-iid"],
    indirect=True,
)
async def test_secure_federation_learns_like_centralized(federation: Federation) -> None:
    await asyncio.wait_for(federation.coordinator.finished.wait(), 60)
    rows = await federation.rows()
    committed = [r for r in rows if r["status"] == "committed"]
    assert [r["model_version"] for r in committed] == list(range(ROUNDS + 1))
    assert committed[0]["accuracy"] < 0.2  # the zero model: one class for everything
    final = committed[-1]["accuracy"]
    central = centralized_accuracy()
    assert final >= central - 0.02, (final, central)
    assert committed[-1]["loss"] < committed[1]["loss"]
    assert all(len(r["participants"]) == 5 for r in committed[1:])


@pytest.mark.parametrize("federation", [(cfg(secure=True), None)], indirect=True)
async def test_secure_aggregate_equals_fedavg_and_hides_updates(federation: Federation) -> None:
    await asyncio.wait_for(federation.coordinator.finished.wait(), 60)
    events = await federation.store.load(federation.tenant, history.STREAM)
    from agentmesh.federated.arrays import unpack

    params = [unpack(e.decode().params, "float64") for e in events]  # type: ignore[attr-defined]
    for r in range(1, ROUNDS + 1):
        true = [federation.sent[(f"fl-p{i}", r)] for i in range(1, 6)]
        # plain FedAvg (weighted by samples) of the true deltas
        deltas = [t[:-2] / t[-2] for t in true]
        counts = [t[-1] for t in true]
        plain = sum(d * n for d, n in zip(deltas, counts, strict=True)) / sum(counts)
        assert np.abs((params[r] - params[r - 1]) - plain).max() < 1e-6
    # what the coordinator received from p1, against p1's true update, over every round
    got = np.concatenate(
        [federation.received[("fl-p1", r)][:-2].view(np.int64).astype(float) for r in range(1, 21)]
    )
    true = np.concatenate([federation.sent[("fl-p1", r)][:-2] for r in range(1, ROUNDS + 1)])
    assert abs(np.corrcoef(got, true)[0, 1]) < 0.05


@pytest.mark.parametrize(
    "federation",
    [(cfg(secure=True, aggregation="average", dp=DPConfig(clip=2.0, noise=0.05)), None)],
    indirect=True,
)
async def test_differential_privacy_reports_epsilon_per_round(federation: Federation) -> None:
    await asyncio.wait_for(federation.coordinator.finished.wait(), 60)
    committed = [r for r in await federation.rows() if r["status"] == "committed"][1:]
    eps = DPConfig(clip=2.0, noise=0.05).epsilon_per_round
    assert [r["epsilon"] for r in committed] == [pytest.approx(eps)] * ROUNDS
    assert federation.coordinator.state.epsilon_spent == pytest.approx(eps * ROUNDS)
    for (_, _), sent in federation.sent.items():  # average: weight 1, delta clipped + noise
        assert sent[-2] == 1.0
        assert np.linalg.norm(sent[:-2]) < 2.0 + 0.05 * 2.0 * np.sqrt(sent.size) * 1.5
    assert committed[-1]["accuracy"] > 0.85
