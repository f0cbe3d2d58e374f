"""Row 2: kill -9 of the broker under a live publisher (500 msg/s, every message retried
with the same id until the broker confirms it). Restarted on the same store: 0
acknowledged messages lost, 0 duplicates in the stream, publishing back in < 10 s. The
JetStream fsync choice (``sync_interval``) is measured: confirmed publishes per second
with the default ``2m`` and with ``always``."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import nats
import pytest

from agentmesh import Envelope, subjects
from agentmesh.runtime.embedded import EmbeddedNats, free_port
from agentmesh.transports import create_transport
from agentmesh.transports.nats import stream_for
from tests.chaos.conftest import FULL, Report, size

pytestmark = pytest.mark.integration
ROW = "2 broker kill -9"
RATE = 500.0


async def stored_ids(url: str, stream: str) -> list[str]:
    """The envelope id of every message in ``stream``, in order."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            ids.append(Envelope.decode(msg.data or b"").id)
        return ids
    finally:
        await nc.close()


@pytest.mark.timeout(300 if FULL else 120)
async def test_broker_killed_under_a_live_publisher(tmp_path: Path, report: Report) -> None:
    seconds = float(size(10, 3))
    server = EmbeddedNats(tmp_path / "nats", port=free_port())  # kept across the restart
    url = server.start()
    tenant = "t" + uuid.uuid4().hex[:8]
    subject = subjects.task(tenant, "steady")
    transport = create_transport(url)
    await transport.connect()
    acked: list[str] = []
    failures = 0
    back_after = float("inf")
    killed_at: float | None = None
    try:
        started = time.monotonic()
        kill_at = started + seconds / 3
        n = 0
        while time.monotonic() - started < seconds:
            env = Envelope.create("test.msg", {"n": n}, tenant_id=tenant)
            n += 1
            while True:  # the publisher retries this envelope (same id) until confirmed
                try:
                    await transport.publish(subject, env, durable=True)
                    break
                except Exception:  # any failure: retry the same envelope
                    failures += 1
                    await asyncio.sleep(0.05)
                    if time.monotonic() - started > seconds + 60:
                        raise
            acked.append(env.id)
            if killed_at is not None and back_after == float("inf"):
                back_after = time.monotonic() - killed_at
            if killed_at is None and time.monotonic() >= kill_at:
                assert server.proc is not None
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait(10)
                server.proc = None
                killed_at = time.monotonic()
                server.start()  # same port, same store
            await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))
        elapsed = time.monotonic() - started
    finally:
        await transport.close()
    try:
        ids = await stored_ids(url, stream_for(subject)[0])
    finally:
        server.stop()
    lost = set(acked) - set(ids)
    duplicates = len(ids) - len(set(ids))
    rate = len(acked) / max(elapsed - back_after, 1e-9)  # outside the outage
    report(
        ROW,
        f"NATS killed under ~{RATE:g} msg/s: 0 acked lost, 0 duplicates, back < 10 s",
        f"{len(acked)} acked ({rate:.0f}/s outside the outage), {len(lost)} lost, {duplicates} duplicates, "
        f"back after {back_after:.1f} s, {failures} failed tries",
        not lost and duplicates == 0 and back_after < 10,
    )
    assert not lost
    assert duplicates == 0
    assert back_after < 10


async def test_sync_interval_trade_off(tmp_path: Path, report: Report) -> None:
    n = size(2000, 300)
    rates: dict[str, float] = {}
    for interval in ("2m", "always"):
        server = EmbeddedNats(tmp_path / interval, port=None, sync_interval=interval)
        url = server.start()
        transport = create_transport(url)
        await transport.connect()
        try:
            tenant = "t" + uuid.uuid4().hex[:8]
            subject = subjects.task(tenant, "sync")
            await transport.publish(
                subject, Envelope.create("w", {}, tenant_id=tenant), durable=True
            )
            started = time.perf_counter()
            for i in range(n):
                env = Envelope.create("test.msg", {"n": i}, tenant_id=tenant)
                await transport.publish(subject, env, durable=True)
            rates[interval] = n / (time.perf_counter() - started)
        finally:
            await transport.close()
            server.stop()
        log = (tmp_path / interval / "nats-server.log").read_text()
        assert "error" not in log.lower(), log[-500:]
    report(
        ROW,
        "sync_interval trade-off: confirmed publishes/s, default 2m vs always (fsync)",
        f"2m {rates['2m']:.0f}/s, always {rates['always']:.0f}/s "
        f"({rates['always'] / rates['2m']:.2f}x)",
        True,
    )
    assert rates["2m"] > 0
    assert rates["always"] > 0
