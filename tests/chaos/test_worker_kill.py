"""Row 1: kill -9 of a worker process holding >= 100 tasks in flight. Every task it held
is redone by another worker within ack wait + 5 s, counted by a raw side-effect log, on
NATS, Redis and RabbitMQ."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from agentmesh import Mesh
from tests.chaos import handlers
from tests.chaos.conftest import FULL, Report, brokers, size
from tests.chaos.processes import ACK_WAIT, spawn, stop
from tests.helpers import eventually, fast_settings

pytestmark = pytest.mark.integration
ROW = "1 kill -9 worker"
SLEEP = 2.0


@pytest.mark.timeout(300 if FULL else 120)
@pytest.mark.parametrize("broker", brokers(("nats_url",)))
async def test_sigkilled_worker_holding_many_tasks(
    broker: str, request: pytest.FixtureRequest, tmp_path: Path, report: Report
) -> None:
    url = request.getfixturevalue(broker)
    kind = broker.removesuffix("_url")
    target = size(100, 20)
    tasks = target + 10
    tenant = "t" + uuid.uuid4().hex[:8]
    log_path = str(tmp_path / "runs.log")
    client = Mesh(url, tenant=tenant, settings=fast_settings(tmp_path, agentmesh_ack_wait=ACK_WAIT))
    victim = spawn("victim", tenant, url, tmp_path)
    survivor: subprocess.Popen[bytes] | None = None
    try:
        await client.start()
        await client.provision(*_queue(tenant))
        ids = [await client.submit("work", {"n": i, "sleep": SLEEP}) for i in range(tasks)]

        def held() -> set[str]:
            runs = handlers.read(log_path)
            started = {t for e, t, p, _ in runs if e == "start" and p == victim.pid}
            done = {t for e, t, p, _ in runs if e == "done" and p == victim.pid}
            return started - done

        await eventually(lambda: len(held()) >= target, 60, what=f"victim holding {target}")
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        victim.wait(10)
        in_flight = held()  # counted once its log is final (it may start one more before the kill)
        survivor = spawn("survivor", tenant, url, tmp_path)

        def all_done() -> bool:
            return {t for e, t, _, _ in handlers.read(log_path) if e == "done"} >= set(ids)

        await eventually(all_done, 90, what="every task done")
    finally:
        stop(victim, survivor)
        await client.stop()
    runs = handlers.read(log_path)
    assert survivor is not None
    restarted = {
        t: ts for e, t, p, ts in runs if e == "start" and p == survivor.pid and t in in_flight
    }
    redone = {t for e, t, p, _ in runs if e == "done" and p == survivor.pid and t in in_flight}
    slowest = max(restarted.values()) - killed_at if restarted else float("inf")
    starts = sum(1 for e, *_ in runs if e == "start")
    reruns = starts - len(ids)
    # counted from the kill, including the start of a fresh worker process
    bound = ACK_WAIT + 5
    report(
        ROW,
        f"{kind}: victim holding >= {target}; each re-run starts <= ack wait + 5 s after kill",
        f"held {len(in_flight)}, all redone {redone == in_flight}, "
        f"slowest re-start {slowest:.1f} s, raw re-runs {reruns}",
        redone == in_flight and slowest <= bound and reruns == len(in_flight),
    )
    assert len(in_flight) >= target
    assert redone == in_flight
    assert slowest <= bound
    assert reruns == len(in_flight)  # only what the victim held ran twice


def _queue(tenant: str) -> tuple[str, str]:
    from agentmesh import subjects

    return subjects.task(tenant, "work"), subjects.capability_group("work")
