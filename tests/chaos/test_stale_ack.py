"""Row 5: a slow handler without progress signals. A worker process is frozen (SIGSTOP)
mid-task past the ack wait, so the broker redelivers the task to a second worker, which
completes it; then the first is thawed (SIGCONT) and finishes late, its ack stale. The
task has exactly one completion in the stream and the waiting client sees one result.
The handler body itself ran twice (handler side effects are at-least-once)."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import nats
import pytest

from agentmesh import Mesh, subjects
from tests.chaos import handlers
from tests.chaos.conftest import Report, size
from tests.chaos.processes import ACK_WAIT, spawn, stop
from tests.helpers import eventually, fast_settings

pytestmark = pytest.mark.integration
ROW = "5 stale ack"


async def test_a_stale_ack_after_redelivery_makes_no_second_completion(
    nats_url: str, tmp_path: Path, report: Report
) -> None:
    n = size(50, 10)
    tenant = "t" + uuid.uuid4().hex[:8]
    log_path = str(tmp_path / "runs.log")
    client = Mesh(nats_url, tenant=tenant, settings=fast_settings(tmp_path))
    slow = spawn("slow-1", tenant, nats_url, tmp_path)
    spare = None
    try:
        await client.start()
        await client.provision(subjects.task(tenant, "work"), subjects.capability_group("work"))
        await client.run("work", {"sleep": 0.0}, timeout=60)  # the slow worker is up
        ids = [await client.submit("work", {"n": i, "sleep": 1.0}) for i in range(n)]

        def started_by(pid: int) -> set[str]:
            return {t for e, t, p, _ in handlers.read(log_path) if e == "start" and p == pid}

        await eventually(lambda: started_by(slow.pid) >= set(ids), 30, what="slow worker took all")
        slow.send_signal(signal.SIGSTOP)  # frozen mid-handler: no progress, no ack
        spare = spawn("spare-1", tenant, nats_url, tmp_path)
        results = [await client.wait_result(t, timeout=60 + 4 * ACK_WAIT) for t in ids]
        slow.send_signal(signal.SIGCONT)

        def slow_finished() -> bool:
            return {
                t for e, t, p, _ in handlers.read(log_path) if e == "done" and p == slow.pid
            } >= set(ids)

        await eventually(slow_finished, 30, what="the thawed worker finished its stale runs")
        # its late outcomes (if any) reach the broker before these reads: one more task
        await client.run("work", {"sleep": 0.0}, timeout=60)
    finally:
        if slow.poll() is None:
            slow.send_signal(signal.SIGCONT)
        stop(slow, spare)
        await client.stop()
    nc = await nats.connect(nats_url)
    try:
        stream = subjects.stream_name(tenant, "evt")
        info = await nc.jetstream().stream_info(
            stream, subjects_filter=f"am.{tenant}.evt.task.completed.*"
        )
        per_task = info.state.subjects or {}
    finally:
        await nc.close()
    completions = {t: per_task.get(f"am.{tenant}.evt.task.completed.{t}", 0) for t in ids}
    assert spare is not None
    spare_runs = started_by_pid(log_path, spare.pid) & set(ids)
    doubles = sum(1 for c in completions.values() if c != 1)
    report(
        ROW,
        f"{n} tasks frozen past the ack wait, redone elsewhere, thawed: 1 completion each",
        f"{doubles} tasks with != 1 completion; redone by the spare {len(spare_runs)}, "
        f"results {len(results)}",
        doubles == 0 and spare_runs == set(ids),
    )
    assert spare_runs == set(ids)
    assert doubles == 0, completions


def started_by_pid(log_path: str, pid: int) -> set[str]:
    return {t for e, t, p, _ in handlers.read(log_path) if e == "start" and p == pid}
