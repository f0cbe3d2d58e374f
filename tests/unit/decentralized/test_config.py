"""Timings (defaults: election 5 s, heartbeat a third of it, gossip 1 s to 3 peers) and the --cluster-nodes / --address parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.decentralized.config import Timings, parse_address, parse_cluster
from agentmesh.decentralized.raft import TICK, RaftNode, sync_conf
from agentmesh.errors import ValidationError


def test_spec_defaults() -> None:
    t = Timings()
    assert (t.election_timeout, t.heartbeat, t.gossip_interval, t.fanout) == (5.0, 5.0 / 3, 1.0, 3)
    low, high = t.election_window
    assert 5.0 < low < 5.001
    assert high == 7.5
    assert low > 3 * t.heartbeat  # what pysyncobj requires


def test_cluster_nodes_may_list_the_own_address_and_are_normalized() -> None:
    assert parse_cluster(["127.0.0.1:7003,127.0.0.1:7001", "localhost:7002"], "127.0.0.1:7001") == (
        "127.0.0.1:7001",
        ["127.0.0.1:7003", "localhost:7002"],
    )
    assert parse_address(" ::1:80 ") == "::1:80"


@pytest.mark.parametrize(
    ("nodes", "own", "message"),
    [
        (["127.0.0.1:1,nonsense"], "127.0.0.1:1", "'nonsense' is not host:port"),
        (["127.0.0.1:1,127.0.0.1:99999"], "127.0.0.1:1", "port must be 1-65535"),
        (["127.0.0.1:2 127.0.0.1:2"], "127.0.0.1:1", "127.0.0.1:2 is listed twice"),
        (["127.0.0.1:2"], None, "own address missing"),
        (["bad_host!:5"], "127.0.0.1:1", "is not a host name"),
    ],
)
def test_bad_cluster_nodes(nodes: list[str], own: str | None, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_cluster(nodes, own)


def test_bad_timings() -> None:
    with pytest.raises(ValidationError, match="election timeout"):
        Timings(election_timeout=0)
    with pytest.raises(ValidationError, match="fan-out"):
        Timings(fanout=0)
    with pytest.raises(ValidationError, match="suspicion timeout"):
        Timings(gossip_interval=1.0, suspicion_timeout=0.5)


def test_idle_raft_links_are_not_timed_out(tmp_path: Path) -> None:
    """Followers send each other nothing between elections; pysyncobj closes a link that
    read nothing for connectionTimeout when it next sends on it, so a finite timeout
    dropped the first vote request after a quiet spell and forced a second round."""
    conf = sync_conf(Timings(election_timeout=1.5), tmp_path)
    assert conf.connectionTimeout >= 3600  # far beyond any quiet spell of a group
    assert conf.tcp_keepalive is not None  # a vanished peer's link is closed by keepalive
    assert conf.raftMaxTimeout <= 1.5 * 1.5 + 1e-9  # a single round within 2 timeouts
    assert conf.appendEntriesPeriod == 0.5


def test_ticks_are_jittered_so_followers_do_not_stand_in_step(tmp_path: Path) -> None:
    """pysyncobj checks the election deadline only on a tick; each tick's wait is drawn
    anew (0.5-1.5 x TICK) so followers woken by the same heartbeat drift apart."""
    node = RaftNode("127.0.0.1:1", ["127.0.0.1:2"], data_dir=tmp_path, group="g", timings=Timings())
    waits = set()
    for _ in range(50):
        node._jitter_tick()
        waits.add(node._conf.autoTickPeriod)
    assert all(0.5 * TICK <= w <= 1.5 * TICK for w in waits)
    assert len(waits) > 40
