"""Bounded trials of "SIGKILL the leader of 5 nodes" (run by hand, not part of the suite).

``python -m tests.integration.raft_election_trials --trials 20`` starts a private
nats-server and five ``start-decentralized-agent`` processes (election timeout 1.5 s),
then, once per trial: kills the leader, waits for a survivor to lead a newer term,
records the time from the SIGKILL to the new leader's own ``state_since``, the election
rounds (terms the group went through) and the candidacies of the first round (read from
the survivors' logs), restarts the killed node and waits until all five agree again.
Prints one JSON line per trial and a summary (max, p50, rounds histogram).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from agentmesh import Mesh
from agentmesh.runtime.embedded import EmbeddedNats
from tests.helpers import fast_settings, unique_tenant
from tests.integration.decentralized_cluster import ELECTION_TIMEOUT, Cluster, until

BOOT = 90.0
_CANDIDACY = re.compile(r'"time":"([^"]+)".*-> candidate')


def _candidacies(cluster: Cluster, offsets: dict[int, int], since: float) -> list[float]:
    """Seconds after ``since`` (wall clock) at which survivors became candidates."""
    found: list[float] = []
    for i, offset in offsets.items():
        path = cluster.data_dir / f"{cluster.ids[i]}.log"
        text = path.read_bytes()[offset:].decode(errors="replace")
        for stamp in _CANDIDACY.findall(text):
            found.append(round(datetime.fromisoformat(stamp).timestamp() - since, 3))
    return sorted(found)


async def _trial(cluster: Cluster, n: int, idle: float) -> dict[str, Any]:
    everyone = list(range(len(cluster.addresses)))
    leader = await cluster.leader(everyone, BOOT)
    await asyncio.sleep(idle)  # a quiet group: links between followers carry nothing
    old = cluster.index_of(leader)
    before = await cluster.status(old)
    assert before is not None
    old_term = before["raft"]["term"]
    survivors = [i for i in everyone if i != old]
    offsets = {i: (cluster.data_dir / f"{cluster.ids[i]}.log").stat().st_size for i in survivors}
    killed_wall = time.time()
    cluster.kill(old)
    found: dict[str, Any] = {}

    async def elected() -> bool:
        for i in survivors:
            view = await cluster.status(i, timeout=0.5)
            if view and view["raft"]["state"] == "leader" and view["raft"]["term"] > old_term:
                found.update(since=view["raft"]["state_since"], term=view["raft"]["term"])
                return True
        return False

    await until(elected, 30, interval=0.1)
    await asyncio.sleep(0.5)  # let the log lines of the election reach the files
    result = {
        "trial": n,
        "took": round(found["since"] - killed_wall, 3),
        "rounds": found["term"] - old_term,
        "candidacies": _candidacies(cluster, offsets, killed_wall),
    }
    cluster.start(old)
    # all five agree on a leader and the restarted node has caught up
    await cluster.leader(everyone, BOOT)

    async def caught_up() -> bool:
        views = await cluster.statuses(everyone)
        return all(v is not None for v in views.values()) and (
            len({v["raft"]["commit_index"] for v in views.values() if v}) == 1
        )

    await until(caught_up, BOOT)
    return result


async def main(trials: int, max_seconds: float, idle: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="am-raft-trials-"))
    server = EmbeddedNats(root / "nats", port=None)
    url = server.start()
    mesh = Mesh(url, tenant=unique_tenant(), settings=fast_settings(root))
    await mesh.start(registry=False)
    cluster = Cluster(mesh, url, root, 5)
    cluster.start_all()
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for n in range(trials):
            if time.monotonic() - started > max_seconds:
                break
            result = await _trial(cluster, n, idle)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        cluster.close()
        await mesh.stop()
        server.stop()
    took = [r["took"] for r in results]
    bound = 2 * ELECTION_TIMEOUT
    summary = {
        "trials": len(results),
        "election_timeout": ELECTION_TIMEOUT,
        "max": max(took),
        "p50": statistics.median(took),
        "over_2x": sum(t > bound for t in took),
        "rounds": dict(sorted(Counter(r["rounds"] for r in results).items())),
        "logs": str(root),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument(
        "--idle", type=float, default=0.0, help="seconds the settled group stays quiet"
    )
    args = parser.parse_args()
    asyncio.run(main(args.trials, args.max_seconds, args.idle))
