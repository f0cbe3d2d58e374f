"""``agentmesh agent start-kafka-agent``: an agent process bound to Kafka answers durable
tasks submitted on Kafka."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from agentmesh import Mesh
from agentmesh.cli import kafka_agent
from tests.e2e.test_product import AGENTMESH, ROOT
from tests.helpers import fast_settings

pytestmark = pytest.mark.e2e


def _start(env: dict[str, str], tenant: str, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [AGENTMESH, "agent", "start-kafka-agent", "kafka-1", "-c", "echo", "--tenant", tenant],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def test_a_kafka_agent_process_runs_tasks_from_kafka(tmp_path: Path, kafka_url: str) -> None:
    tenant = f"k{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        KAFKA_BROKERS=kafka_url.removeprefix("kafka://"),
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.5",
        LOG_LEVEL="WARNING",
    )
    env.pop("NATS_URL", None)
    proc = _start(env, tenant, tmp_path / "agent.log")
    try:
        mesh = Mesh(kafka_url, tenant=tenant, settings=fast_settings(tmp_path))
        async with mesh:
            result = await mesh.run("echo", {"via": "kafka"}, timeout=60)
        assert result["agent_id"] == "kafka-1"
        assert result["echo"]["via"] == "kafka"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_kafka_brokers_name_the_transport() -> None:
    assert kafka_agent.kafka_url("broker-1:9092,broker-2:9092") == "kafka://broker-1:9092"
    assert kafka_agent.kafka_url("kafka://b:1") == "kafka://b:1"
