"""Process level: a coordinator and 4 participant processes on NATS, rounds in SQLite.

A participant is SIGKILLed while the rounds run (left out of its round, then restarted:
it rejoins), the coordinator is SIGKILLed right after a commit and restarted (it resumes
from the last committed version), and training still reaches the accuracy bar.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest

from agentmesh import subjects
from agentmesh.federated.data import train_test
from agentmesh.federated.history import round_rows
from agentmesh.federated.model import TrainConfig, evaluate, init_params, train
from agentmesh.store.sqlite import SqliteEventStore

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[3]
ROUNDS = 16
EPOCHS = 5


class Cluster:
    def __init__(self, nats_url: str, tmp: Path) -> None:
        self.tenant = "fl" + uuid.uuid4().hex[:8]
        self.tmp = tmp
        self.db_url = f"sqlite+aiosqlite:///{tmp / 'fl.db'}"
        self.env = dict(
            os.environ,
            NATS_URL=nats_url,
            DATABASE_URL=self.db_url,
            AGENTMESH_DATA_DIR=str(tmp),
            AGENTMESH_HEARTBEAT_INTERVAL="0.5",
            LOG_LEVEL="INFO",
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, agent_id: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{agent_id}.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agentmesh.cli.main",
                    "agent",
                    "start-federated-agent",
                    agent_id,
                    "--tenant",
                    self.tenant,
                    *args,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self.procs.append(proc)
        return proc

    def coordinator(self) -> subprocess.Popen[bytes]:
        return self.start(
            "fl-coord",
            "-c",
            "federated_coordination",
            "--role",
            "coordinator",
            "--data",
            "digits",
            "--rounds",
            str(ROUNDS),
            "--epochs",
            str(EPOCHS),
            "--round-timeout",
            "3",
            "--min-participants",
            "4",
            "--round-interval",
            "0.3",
        )

    def participant(self, i: int) -> subprocess.Popen[bytes]:
        return self.start(
            f"fl-p{i}",
            "-c",
            "federated_training",
            "--coordinator",
            "fl-coord",
            "--data",
            f"digits:shard={i}/4",
        )

    async def rows(self) -> list[dict[str, Any]]:
        store = SqliteEventStore(self.db_url)
        await store.connect()
        try:
            return await round_rows(store, self.tenant, "fl-coord")
        finally:
            await store.close()

    async def wait_rows(self, predicate: Any, timeout: float) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if (self.tmp / "fl.db").exists():
                rows = await self.rows()
                if predicate(rows):
                    return rows
            if loop.time() > deadline:
                logs = (self.tmp / "fl-coord.log").read_text()[-3000:]
                raise AssertionError(f"rounds not as expected in time; coordinator log:\n{logs}")
            await asyncio.sleep(0.2)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()


@pytest.fixture
def cluster(nats_url: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(nats_url, tmp_path)
    yield c
    for p in c.procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in c.procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def committed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] == "committed"]


async def test_training_survives_killed_participant_and_coordinator(cluster: Cluster) -> None:
    coord = cluster.coordinator()
    await cluster.wait_rows(lambda rows: len(committed(rows)) >= 1, 30)  # version 0 stored
    parts = {i: cluster.participant(i) for i in range(1, 5)}
    rows = await cluster.wait_rows(
        lambda rows: any(len(r["participants"]) == 4 for r in committed(rows)), 60
    )
    # p2 is killed the moment a round sends it the model (the test listens on its inbox):
    # that round gets no update from it and commits with the other three
    killed_in: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def on_p2_message(msg: Any) -> None:
        env = orjson.loads(msg.data)
        if env["metadata"]["type"] == "federated_training_request" and not killed_in.done():
            parts[2].send_signal(signal.SIGKILL)
            killed_in.set_result(env["payload"]["round"])

    nc = await nats.connect(cluster.env["NATS_URL"])
    try:
        await nc.subscribe(subjects.agent(cluster.tenant, "fl-p2"), cb=on_p2_message)
        killed_round = await asyncio.wait_for(killed_in, 30)
    finally:
        await nc.close()
    parts[2].wait()
    rows = await cluster.wait_rows(
        lambda rows: any(r["round"] == killed_round for r in committed(rows)), 30
    )
    dropped_round = next(r for r in committed(rows) if r["round"] == killed_round)
    assert dropped_round["dropped"] == ["fl-p2"]
    assert len(dropped_round["participants"]) == 3
    parts[2] = cluster.participant(2)  # the killed participant comes back
    # the coordinator killed right after a commit, and restarted: it resumes
    version = dropped_round["model_version"]
    rows = await cluster.wait_rows(lambda rows: len(committed(rows)) > version + 1, 30)
    coord.send_signal(signal.SIGKILL)
    coord.wait()
    before = committed(await cluster.rows())[-1]["model_version"]
    assert before < ROUNDS, "the kill came too late to test a restart"
    coord = cluster.coordinator()
    assert await asyncio.to_thread(coord.wait, 120) == 0, cluster.log("fl-coord")
    rows = committed(await cluster.rows())
    assert [r["model_version"] for r in rows] == list(range(ROUNDS + 1))
    assert rows[0]["round"] == 0
    assert all(r["round"] > 0 for r in rows[1:])
    assert f"resuming at version {before}" in cluster.log("fl-coord")
    assert any("fl-p2" in r["participants"] for r in rows[before + 1 :]), "p2 did not rejoin"
    X, y, X_test, y_test = train_test(0)
    central = evaluate(
        train(init_params(64, 10), X, y, TrainConfig(epochs=ROUNDS * EPOCHS)), X_test, y_test
    )[0]
    assert rows[-1]["accuracy"] >= central - 0.02, (rows[-1]["accuracy"], central)
    listing = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agentmesh.cli.main", "federated", "rounds", "-t", cluster.tenant,
         "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=cluster.env,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    listed = orjson.loads(listing.stdout)["rounds"]
    assert [r["model_version"] for r in listed if r["status"] == "committed"] == list(
        range(ROUNDS + 1)
    )
