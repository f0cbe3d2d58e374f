"""Safety on the real task path (memory broker and NATS): offers checked before the
handler, results before the outcome, quarantine across processes, release, hot reload."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Envelope, Mesh, RemoteError, TaskContext
from agentmesh.config import Settings
from agentmesh.safety import broadcast, policy_from_data, policy_to_data
from agentmesh.safety.guard import channel
from tests.helpers import Collector, eventually

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "nats"])
def make_mesh(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Mesh]:
    url = (
        f"memory://{uuid.uuid4().hex}"
        if request.param == "memory"
        else request.getfixturevalue("nats_url")
    )
    tenant = "t" + uuid.uuid4().hex[:8]

    def make(**kw: Any) -> Mesh:
        base: dict[str, Any] = {
            "agentmesh_data_dir": tmp_path,
            "agentmesh_heartbeat_interval": 0.1,
            "agentmesh_ack_wait": 2.0,
            "agentmesh_max_deliver": 3,
        }
        return Mesh(url, tenant=tenant, settings=Settings(**{**base, **kw}))

    return make


async def test_a_denied_offer_is_rejected_before_the_handler(
    make_mesh: Callable[..., Mesh],
) -> None:
    mesh = make_mesh()
    calls: list[str] = []

    @mesh.agent("worker-1", capabilities=["work"])
    async def work(task: TaskContext) -> dict[str, Any]:
        calls.append(task.task_id)
        return {"ok": True}

    async with mesh:
        with pytest.raises(RemoteError) as caught:
            await mesh.run("work", {"sql": "DROP TABLE users"}, timeout=10, max_attempts=3)
        assert caught.value.code == "TASK_REJECTED"
        assert "content_filter" in str(caught.value)
        assert calls == []
        assert await mesh.run("work", {"text": "fine"}, timeout=10) == {"ok": True}
        # request/reply is checked too
        with pytest.raises(RemoteError) as req:
            await mesh.request("work", {"q": "<script>alert(1)</script>"})
        assert req.value.code == "SAFETY_REJECTED"


async def test_pii_in_a_result_is_redacted_before_it_is_published(
    make_mesh: Callable[..., Mesh],
) -> None:
    mesh = make_mesh()

    @mesh.agent("leaky-1", capabilities=["lookup"])
    async def lookup(task: TaskContext) -> dict[str, Any]:
        return {"contact": "jane@example.com", "card": "4111 1111 1111 1111", "n": 1}

    async with mesh:
        result = await mesh.run("lookup", {}, timeout=10)
        assert result == {"contact": "[REDACTED:email]", "card": "[REDACTED:card]", "n": 1}
        assert mesh.safety is not None
        monitor = mesh.safety.monitors[(mesh.tenant, "leaky-1")]
        assert len(monitor.violations) == 1


async def test_quarantine_is_honoured_everywhere_and_lifted_by_release(
    make_mesh: Callable[..., Mesh],
) -> None:
    """Two 'processes' (meshes): the leaker is quarantined after its 5th violation, its
    tasks go to the other agent; a release puts it back to work."""
    client, good_side, bad_side = make_mesh(), make_mesh(), make_mesh()
    handled: dict[str, list[str]] = {}
    leaking = asyncio.Event()
    leaking.set()

    @good_side.agent("good-1", capabilities=["job"])
    async def good(task: TaskContext) -> dict[str, Any]:
        handled.setdefault(task.task_id, []).append("good-1")
        await asyncio.sleep(0.01)
        return {"by": "good-1"}

    @bad_side.agent("leaker-1", capabilities=["job"])
    async def leak(task: TaskContext) -> dict[str, Any]:
        handled.setdefault(task.task_id, []).append("leaker-1")
        if leaking.is_set():
            return {"by": "leaker-1", "secret": "call +1 415-555-0132"}
        return {"by": "leaker-1"}

    broadcasts = Collector()
    await client.start()
    await good_side.start()
    await bad_side.start()
    try:
        await client.transport.subscribe(channel(client.tenant), broadcasts)
        ids = [await client.submit("job", {"n": i}) for i in range(40)]
        results = [await client.wait_result(i, timeout=20) for i in ids]
        assert len(results) == 40
        leaker = bad_side.agents["leaker-1"]
        await eventually(lambda: leaker.status == "QUARANTINED", timeout=10)
        quarantines = [m for m in broadcasts.envelopes if m.type == "safety.quarantine"]
        assert quarantines
        assert quarantines[0].payload["agent_id"] == "leaker-1"
        await eventually(
            lambda: (
                (r := client.registry.get(client.tenant, "leaker-1")) is not None
                and r.status == "QUARANTINED"
            ),
            timeout=5,
        )
        leaker_runs = sum(who == ["leaker-1"] for who in handled.values())
        assert leaker_runs <= 5 + leaker.max_concurrent  # stopped at the fifth (+ in flight)
        more = [await client.submit("job", {"n": i}) for i in range(20)]
        for task_id in more:
            assert (await client.wait_result(task_id, timeout=20))["by"] == "good-1"
        leaking.clear()
        await broadcast.release(client.transport, client.tenant, "leaker-1", "admin", "fixed")
        await eventually(lambda: leaker.status in ("AVAILABLE", "BUSY"), timeout=5)
        later = [await client.submit("job", {"n": i}) for i in range(30)]
        by = [(await client.wait_result(t, timeout=20))["by"] for t in later]
        assert "leaker-1" in by, "released: takes work again"
        assert all(len(v) == 1 for v in handled.values()), "no task ran twice"
    finally:
        await bad_side.stop()
        await good_side.stop()
        await client.stop()


async def test_hot_reload_under_load_changes_decisions_and_loses_nothing(
    make_mesh: Callable[..., Mesh],
) -> None:
    client, side_a, side_b = make_mesh(), make_mesh(), make_mesh()
    runs: dict[str, int] = {}

    for side, name in ((side_a, "w-a"), (side_b, "w-b")):

        @side.agent(name, capabilities=["echo"])
        async def echo(task: TaskContext) -> dict[str, Any]:
            runs[task.task_id] = runs.get(task.task_id, 0) + 1
            await asyncio.sleep(0.005)
            return {"ok": True}

    outcomes: dict[str, list[str]] = {}

    async def record(env: Envelope) -> None:
        outcomes.setdefault(str(env.payload["task_id"]), []).append(env.type or "")

    await client.start()
    await side_a.start()
    await side_b.start()
    try:
        for kind in ("task.completed", "task.rejected", "task.failed"):
            await client.on_event(kind, record)
        before = [
            await client.submit("echo", {"text": "mentions zebra", "n": i}) for i in range(60)
        ]
        new = policy_from_data({"version": 2, "content_filter": {"blocked_patterns": ["zebra"]}})
        await broadcast.publish_policy(client.transport, client.tenant, policy_to_data(new))
        await eventually(
            lambda: all(
                m.safety is not None and m.safety.policy.version == 2 for m in (side_a, side_b)
            ),
            timeout=5,
        )
        after = [await client.submit("echo", {"text": "mentions zebra", "n": i}) for i in range(60)]
        await eventually(lambda: len(outcomes) == 120, timeout=30)
        assert all(len(v) == 1 for v in outcomes.values()), "exactly one outcome per task"
        assert all(n == 1 for n in runs.values()), "no task ran twice"
        assert all(outcomes[t] == ["task.rejected"] for t in after)
        assert all(t not in runs for t in after), "a rejected task never reaches a handler"
        # a policy that does not compile is refused whole; the last good one stays
        assert side_a.safety is not None
        refused = side_a.safety.refusals
        await client.transport.publish(
            channel(client.tenant),
            Envelope.create(
                "safety.policy",
                {"policy": {"version": 3, "content_filter": {"blocked_patterns": ["(a)\\1"]}}},
                tenant_id=client.tenant,
            ),
        )
        await client.submit("echo", {"text": "probe"})
        guard = side_a.safety
        await eventually(lambda: guard.refusals == refused + 1, timeout=10, what="refused")
        assert side_a.safety.policy.version == 2
        assert {outcomes[t][0] for t in before} <= {"task.completed", "task.rejected"}
    finally:
        await side_b.stop()
        await side_a.stop()
        await client.stop()


async def test_sighup_rereads_the_policy_file_and_keeps_the_last_good_one(
    tmp_path: Path,
) -> None:
    import os
    import signal

    from agentmesh.observability import metrics

    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n", encoding="utf-8")
    mesh = Mesh(
        f"memory://{uuid.uuid4().hex}",
        tenant="t" + uuid.uuid4().hex[:8],
        settings=Settings(agentmesh_data_dir=tmp_path, agentmesh_safety_policy=policy),
    )

    @mesh.agent("reloader-1", capabilities=["echo"])
    async def echo(task: TaskContext) -> dict[str, Any]:
        return dict(task.payload)

    async with mesh:
        guard = mesh.safety
        assert guard is not None
        assert guard._hup, "SIGHUP is handled by the process's loop"
        assert await mesh.run("echo", {"text": "a zebra"}, timeout=10) == {"text": "a zebra"}
        policy.write_text(
            "version: 2\ncontent_filter:\n  blocked_patterns: [zebra]\n", encoding="utf-8"
        )
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: guard.policy.version == 2, timeout=5)
        with pytest.raises(RemoteError):
            await mesh.run("echo", {"text": "a zebra"}, timeout=10)
        policy.write_text("version: 3\nlimits:\n  max_depth: 0\n", encoding="utf-8")
        reloads, refused = guard.reloads, guard.refusals
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: guard.refusals == refused + 1, timeout=10, what="refused")
        assert guard.reloads == reloads
        assert guard.policy.version == 2, "a bad file is refused; the last good policy stays"
        exposition = metrics.exposition()[0].decode()
        assert 'agentmesh_safety_violations_total{rule="content_filter",severity="high"}' in (
            exposition
        )
        assert 'agentmesh_alignment_score{agent_id="reloader-1"}' in exposition


async def test_running_tasks_of_a_quarantined_agent_go_back_to_others(
    make_mesh: Callable[..., Mesh], tmp_path: Path
) -> None:
    policy = tmp_path / "strict.yaml"
    policy.write_text("version: 1\nquarantine: {max_violations: 1}\n", encoding="utf-8")
    client, bad_side = make_mesh(), make_mesh(agentmesh_safety_policy=policy)
    good_side = make_mesh()
    release = asyncio.Event()
    running: list[str] = []
    interrupted: list[str] = []
    done_by: dict[str, str] = {}

    @bad_side.agent("leaker-2", capabilities=["slow"], max_concurrent=4)
    async def leaker(task: TaskContext) -> dict[str, Any]:
        if task.payload.get("leak"):
            await eventually(lambda: len(running) == 3, timeout=20, what="the others running")
            return {"mail": "ceo@example.com"}
        running.append(task.task_id)
        try:
            await release.wait()
        except asyncio.CancelledError:
            interrupted.append(task.task_id)
            raise
        return {"by": "leaker-2"}

    await client.start()
    await bad_side.start()
    try:
        slow = [await client.submit("slow", {"n": i}) for i in range(3)]
        leak = await client.submit("slow", {"leak": True})
        leaker_rt = bad_side.agents["leaker-2"]
        await eventually(lambda: leaker_rt.status == "QUARANTINED", timeout=10)
        await eventually(lambda: len(interrupted) == 3, timeout=5)

        @good_side.agent("good-2", capabilities=["slow"])
        async def good(task: TaskContext) -> dict[str, Any]:
            return {"by": "good-2"}

        await good_side.start()
        for task_id in slow:
            done_by[task_id] = (await client.wait_result(task_id, timeout=20))["by"]
        assert set(interrupted) == set(slow)
        assert set(done_by.values()) == {"good-2"}, "the interrupted tasks ran elsewhere"
        assert (await client.wait_result(leak, timeout=10)) == {"mail": "[REDACTED:email]"}
    finally:
        release.set()
        await good_side.stop()
        await bad_side.stop()
        await client.stop()
