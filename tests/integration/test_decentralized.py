"""Decentralized agents as OS processes on 127.0.0.1: Raft (pysyncobj) and SWIM gossip.

Timings are shortened (election timeout 1.5 s, gossip every 0.25 s, suspicion 1.5 s);
every wait is on a condition reported by the nodes themselves over the bus.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh
from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.errors import AgentMeshError
from agentmesh.runtime.registry import Registry
from tests.helpers import fast_settings, unique_tenant
from tests.integration.decentralized_cluster import (
    ELECTION_TIMEOUT,
    GOSSIP_INTERVAL,
    SUSPICION_TIMEOUT,
    Cluster,
    free_port,
    until,
)
from tests.unit.api.conftest import make_settings, running

pytestmark = pytest.mark.integration
BOOT = 60.0  # five Python processes starting on a busy 2-core machine


@pytest.fixture
async def mesh(nats_url: str, tmp_path: Path) -> AsyncIterator[Mesh]:
    m = Mesh(nats_url, tenant=unique_tenant(), settings=fast_settings(tmp_path))
    await m.start(registry=False)
    yield m
    await m.stop()


@pytest.fixture
def make_cluster(mesh: Mesh, nats_url: str, tmp_path: Path) -> Any:
    clusters: list[Cluster] = []

    def make(size: int) -> Cluster:
        cluster = Cluster(mesh, nats_url, tmp_path, size)
        clusters.append(cluster)
        cluster.start_all()
        return cluster

    yield make
    for c in clusters:
        c.close()


async def converged(cluster: Cluster, nodes: list[int]) -> dict[str, Any] | None:
    """The common (applied, digest, commit index) of ``nodes``, or None while they differ."""
    views = await cluster.statuses(nodes)
    if any(v is None for v in views.values()):
        return None
    keys = {
        (v["state"]["applied"], v["state"]["digest"], v["raft"]["commit_index"])
        for v in views.values()
        if v is not None
    }
    if len(keys) != 1:
        return None
    first = next(iter(views.values()))
    assert first is not None
    return dict(first["state"])


async def gossip_state(cluster: Cluster, observer: int, address: str) -> str | None:
    view = await cluster.status(observer)
    if view is None:
        return None
    return next((m["gossip"] for m in view["members"] if m["address"] == address), None)


async def test_leader_sigkill_new_leader_within_two_timeouts_nothing_lost(
    make_cluster: Any,
) -> None:
    cluster: Cluster = make_cluster(5)
    everyone = list(range(5))
    leader = await cluster.leader(everyone, BOOT)
    for k in range(30):
        answer = await cluster.propose(k % 5, {"op": "decide", "key": f"k{k}", "value": k})
        assert answer["accepted"], answer
    with pytest.raises(AgentMeshError, match="unknown proposal op 'nope'"):
        await cluster.propose(1, {"op": "nope"})
    old = cluster.index_of(leader)
    survivors = [i for i in everyone if i != old]
    registry = Registry(cluster.mesh.transport, tenant=cluster.mesh.tenant, health_check_timeout=60)
    await registry.start()

    def registry_status(agent_id: str) -> str | None:
        return next((a["status"] for a in registry.snapshot() if a["agent_id"] == agent_id), None)

    try:
        await until(lambda: registry_status(cluster.ids[old]) in ("AVAILABLE", "BUSY"), 30)
    except AssertionError:
        raise AssertionError(f"registry: {registry.snapshot()} ids {cluster.ids}") from None

    before = await cluster.status(old)
    assert before is not None
    old_term = before["raft"]["term"]
    killed_at, killed_wall = time.monotonic(), time.time()
    cluster.kill(old)

    elected_at: list[float] = []
    terms: list[int] = []

    async def new_leader_elected() -> bool:  # some survivor says it leads a newer term
        for i in survivors:
            view = await cluster.status(i, timeout=0.5)
            if view and view["raft"]["state"] == "leader" and view["raft"]["leader"] != leader:
                elected_at.append(view["raft"]["state_since"])
                terms.append(view["raft"]["term"])
                return True
        return False

    # polled gently: a status request competes with Raft for the node's CPU
    await until(new_leader_elected, 2 * ELECTION_TIMEOUT + 10, interval=0.1)
    # the node's own clock of its election: the polling of four busy processes adds
    # up to seconds that are not the election's
    took = elected_at[0] - killed_wall
    rounds = terms[0] - old_term
    assert 0 < took <= 2 * ELECTION_TIMEOUT, f"new leader after {took:.2f}s in {rounds} round(s)"
    print(f"seen {time.monotonic() - killed_at:.2f}s after the SIGKILL")
    print(f"new leader {took:.2f}s after the SIGKILL (election timeout {ELECTION_TIMEOUT}s)")
    new_leader = {"address": await cluster.leader(survivors, 10)}
    assert new_leader["address"] != leader

    # no committed entry lost: every survivor has the 30 decisions, and the group goes on
    answer = await cluster.propose(survivors[0], {"op": "decide", "key": "after", "value": 1})
    assert answer["accepted"]
    await until(lambda: converged(cluster, survivors), 10)
    state = await converged(cluster, survivors)
    assert state is not None
    assert state["decisions"] == 31
    for k in (0, 29):  # a decided key stays decided on the new leader
        again = await cluster.propose(
            cluster.index_of(new_leader["address"]), {"op": "decide", "key": f"k{k}", "value": -1}
        )
        assert again == {"accepted": False, "reason": f"'k{k}' is already decided: {k}"}

    # gossip: every survivor declares the killed node dead, one suspicion timeout after
    # the failed probe that made it a suspect (probing and spreading take a few periods)
    async def dead_since() -> dict[int, tuple[float, float | None]] | None:
        found = {}
        for i in survivors:
            view = await cluster.status(i)
            member = next(m for m in view["members"] if m["address"] == leader) if view else None
            if member is None or member["gossip"] != "dead":
                return None
            found[i] = (member["since"] - killed_wall, member["suspected"])
        return found

    await until(dead_since, 20)
    seen = await dead_since()
    assert seen is not None
    latencies = {i: t for i, (t, _) in seen.items()}
    print(
        f"gossip: dead on every survivor after {sorted(round(t, 2) for t in latencies.values())}s"
    )
    for i, (dead_after, suspected) in seen.items():
        # never before the suspicion timeout, and no node waits longer than it once it
        # suspects (a node that hears of the death first may not have suspected at all)
        assert SUSPICION_TIMEOUT <= dead_after <= SUSPICION_TIMEOUT + 8 * GOSSIP_INTERVAL, seen
        if suspected is not None:
            waited = dead_after + killed_wall - suspected
            assert waited <= SUSPICION_TIMEOUT + GOSSIP_INTERVAL, (i, waited)

    # gossip feeds the registry: UNHEALTHY long before its 60 s health-check timeout
    await until(lambda: registry_status(cluster.ids[old]) == "UNHEALTHY", 10)
    unhealthy_after = time.monotonic() - killed_at
    assert unhealthy_after < SUSPICION_TIMEOUT + 8 * GOSSIP_INTERVAL + 2, unhealthy_after
    print(f"registry: UNHEALTHY {unhealthy_after:.2f}s after the SIGKILL (health timeout 60s)")
    await registry.stop()

    # the killed node restarts on its journal, catches up, and gossip sees it alive again
    cluster.start(old)
    await until(lambda: converged(cluster, everyone), BOOT)

    async def alive_again() -> bool:
        return await gossip_state(cluster, survivors[0], leader) == "alive"

    await until(alive_again, 10)


async def test_sigstop_two_of_five_majority_commits_minority_cannot_then_logs_converge(
    make_cluster: Any, mesh: Mesh, tmp_path: Path
) -> None:
    cluster: Cluster = make_cluster(5)
    everyone = list(range(5))
    leader = cluster.index_of(await cluster.leader(everyone, BOOT))
    follower = next(i for i in everyone if i != leader)
    cluster.freeze(leader)
    cluster.freeze(follower)
    majority = [i for i in everyone if i not in (leader, follower)]

    # the three others elect a leader among themselves and keep committing
    await cluster.leader(majority, 10 * ELECTION_TIMEOUT)
    for k in range(20):
        answer = await cluster.propose(majority[k % 3], {"op": "set", "key": f"m{k}", "value": k})
        assert answer["accepted"], answer
    await until(lambda: converged(cluster, majority), 20)  # followers apply a moment later
    state = await converged(cluster, majority)
    assert state is not None
    assert state["config_keys"] == 20

    # two of five cannot commit: freeze one more, propose through the remaining two
    cluster.freeze(majority[0])
    minority = majority[1:]
    before = {
        i: v["raft"]["commit_index"] for i, v in (await cluster.statuses(minority)).items() if v
    }
    with pytest.raises(AgentMeshError):
        await cluster.propose(minority[0], {"op": "set", "key": "minority", "value": 1}, timeout=2)
    after = {
        i: v["raft"]["commit_index"] for i, v in (await cluster.statuses(minority)).items() if v
    }
    assert after == before, (before, after)

    # everyone back: every log converges to the same entries
    for i in (leader, follower, majority[0]):
        cluster.thaw(i)
    await until(lambda: converged(cluster, everyone), 30)
    state = await converged(cluster, everyone)
    assert state is not None
    assert state["config_keys"] >= 20

    # a sixth node joins: gossip brings it to the leader, which adds it to the Raft group
    cluster.addresses.append(f"127.0.0.1:{free_port()}")
    cluster.ids.append("node-5")
    cluster.start(5)

    async def joined() -> bool:
        view = await cluster.status(5)
        return (
            bool(view) and len(view["raft"]["members"]) == 6 and view["raft"]["leader"] is not None
        )

    await until(joined, BOOT)
    await until(lambda: converged(cluster, [*everyone, 5]), 30)
    answer = await cluster.propose(5, {"op": "set", "key": "from-the-new-node", "value": 6})
    assert answer["accepted"]

    # the seed's membership request: list, and a leave through Raft's dynamic membership
    listed = await cluster.mesh.send(
        cluster.ids[0], {"action": "list"}, type="cluster_membership_request"
    )
    assert len(listed["members"]) == 6
    assert listed["leader"] in cluster.addresses
    left = await cluster.mesh.send(
        cluster.ids[0],
        {"action": "leave", "address": cluster.addresses[5]},
        type="cluster_membership_request",
    )
    assert cluster.addresses[5] not in left["members"]
    assert len(left["members"]) == 5
    joined_again = await cluster.mesh.send(
        cluster.ids[1],
        {"action": "join", "address": cluster.addresses[5]},
        type="cluster_membership_request",
    )
    assert len(joined_again["members"]) == 6
    await until(lambda: converged(cluster, [*everyone, 5]), 30)

    # visible: leader, term, commit index, members with their gossip state
    for group in await show_groups(cluster, mesh, tmp_path):
        assert group["leader"] in cluster.addresses
        assert group["term"] >= 2
        assert group["commit_index"] > 20
        assert sorted(m["address"] for m in group["members"]) == sorted(cluster.addresses)
        assert {m["gossip"] for m in group["members"]} == {"alive"}
        assert sum(m["leader"] for m in group["members"]) == 1


async def test_thousand_tasks_while_a_node_is_sigkilled_each_result_committed_once(
    make_cluster: Any, mesh: Mesh
) -> None:
    cluster: Cluster = make_cluster(4)
    everyone = list(range(4))
    await cluster.leader(everyone, BOOT)
    # a task from the tenant's capability queue goes through the pool as well
    assert (await mesh.run("square", {"n": 12}, timeout=BOOT))["square"] == 144

    tasks = [{"id": f"task-{n}", "payload": {"n": n, "sleep": 0.02}} for n in range(1000)]
    for start in range(0, 1000, 250):
        answer = await cluster.propose(
            start // 250, {"op": "submit", "tasks": tasks[start : start + 250]}
        )
        assert answer["accepted"]
        assert answer["result"]["added"] == 250

    # kill a node while it holds claims, once the pool is well under way
    victim: dict[str, int] = {}

    async def busy_victim() -> bool:
        for i in everyone:
            view = await cluster.status(i)
            if view and view["pool"]["running"] > 0 and view["state"]["tasks"]["done"] >= 150:
                victim["i"] = i
                return True
        return False

    async def frozen_holding_claims() -> bool:
        # freeze a busy node, then ask a survivor whether the frozen node still holds
        # unfinished claims: a node seen running may finish its last task before a kill
        await until(busy_victim, 60, interval=0.02)
        cluster.freeze(victim["i"])
        await asyncio.sleep(0.5)  # results it proposed just before the freeze commit now
        other = next(i for i in everyone if i != victim["i"])
        view = await cluster.status(other, timeout=5, tasks=True)
        held = view is not None and any(
            t["status"] == "claimed" and t.get("claimant") == cluster.addresses[victim["i"]]
            for t in view["tasks"].values()
        )
        if not held:
            cluster.thaw(victim["i"])
        return held

    await until(frozen_holding_claims, 90, interval=0.05)
    cluster.kill(victim["i"])
    survivors = [i for i in everyone if i != victim["i"]]

    async def all_done() -> bool:
        view = await cluster.status(survivors[0])
        return bool(view) and view["state"]["tasks"]["done"] == 1001

    await until(all_done, 120, interval=0.25)
    await until(lambda: converged(cluster, survivors), 20)
    for i in survivors:
        view = await cluster.status(i, timeout=5, tasks=True)
        assert view is not None
        assert view["state"]["results_committed"] == 1001  # one accepted result per task
        table = view["tasks"]
        for n in range(1000):
            t = table[f"task-{n}"]
            assert t["status"] == "done"
            assert t["outcome"] == "completed"
            assert t["result"]["square"] == n * n
    reassigned = [t for t in table.values() if t["claims"] > 1]
    assert reassigned, "the killed node's claims were released and claimed again"
    print(
        f"{len(reassigned)} task(s) of the killed node claimed again; 1000 results committed once"
    )

    # the killed node restarts (snapshot + journal) and catches up
    cluster.start(victim["i"])
    await until(lambda: converged(cluster, everyone), BOOT)


async def show_groups(cluster: Cluster, mesh: Mesh, tmp_path: Path) -> list[dict[str, Any]]:
    """The groups as ``agentmesh status --json`` and ``GET /v1/tenants/T/clusters`` show them."""
    (tmp_path / "status").mkdir(exist_ok=True)
    env = dict(
        os.environ,
        NATS_URL=cluster.nats_url,
        AGENTMESH_DATA_DIR=str(tmp_path / "status"),
        AGENTMESH_HEARTBEAT_INTERVAL="0.2",  # status listens for heartbeats that long
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentmesh.cli.main",
        "status",
        "--json",
        "--tenant",
        mesh.tenant,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    from_cli = json.loads(out)["decentralized"]

    app = create_app(
        make_settings(tmp_path), mesh=mesh, options=ApiOptions(rate_limit_enabled=False)
    )
    async for api in running(app):
        reply = await api.client.get(
            f"/v1/tenants/{mesh.tenant}/clusters", headers=api.auth(mesh.tenant, "observer")
        )
        assert reply.status_code == 200, reply.text
        from_rest = reply.json()["groups"]
    assert [g["group"] for g in from_cli] == [g["group"] for g in from_rest] == ["default"]
    return [from_cli[0], from_rest[0]]
