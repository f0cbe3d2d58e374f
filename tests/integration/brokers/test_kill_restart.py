"""A durable consumer killed with SIGKILL mid-stream loses nothing after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.transports import create_transport
from tests.helpers import eventually, unique_tenant

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
COUNT = 300


def start_consumer(url: str, subject: str, out: Path) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "tests.integration.brokers.consumer",
        url,
        subject,
        "kr",
        str(out),
    ]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def handled(out: Path) -> list[int]:
    if not out.exists():
        return []
    return [int(line) for line in out.read_text().splitlines() if line.strip()]


async def kill_and_restart(url: str, tmp_path: Path) -> None:
    tenant = unique_tenant()
    subject = subjects.task(tenant, "crash")
    out = tmp_path / "handled.txt"
    ready = tmp_path / "handled.txt.ready"
    first = start_consumer(url, subject, out)
    publisher = create_transport(url)
    await publisher.connect()
    try:
        # the group exists before the stream starts (a slow start must not lose the head)
        await eventually(ready.exists, 60, what="the consumer's group is created")
        for n in range(COUNT):
            await publisher.publish(
                subject, Envelope.create("test.crash", {"n": n}, tenant_id=tenant), durable=True
            )
        await eventually(lambda: len(handled(out)) >= 40, 30)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        killed_at = len(set(handled(out)))
        assert killed_at < COUNT, "the consumer must be killed mid-stream"
        second = start_consumer(url, subject, out)
        try:
            await eventually(lambda: set(handled(out)) >= set(range(COUNT)), 60)
        finally:
            second.kill()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        await publisher.close()
    assert set(handled(out)) == set(range(COUNT))


async def test_kafka_consumer_sigkill_loses_nothing(kafka_url: str, tmp_path: Path) -> None:
    await kill_and_restart(kafka_url, tmp_path)


async def test_rabbitmq_consumer_sigkill_loses_nothing(rabbitmq_url: str, tmp_path: Path) -> None:
    await kill_and_restart(rabbitmq_url, tmp_path)


async def test_redis_consumer_sigkill_loses_nothing(redis_url: str, tmp_path: Path) -> None:
    await kill_and_restart(redis_url, tmp_path)
