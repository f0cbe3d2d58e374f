"""Timings and addresses of a decentralized group (pure: no I/O).

The defaults: Raft election timeout 5 s with a heartbeat every
election_timeout/3, gossip every 1 s to up to 3 peers. Every figure is configurable so that
tests run fast.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from agentmesh.errors import ValidationError

ELECTION_TIMEOUT = 5.0
GOSSIP_INTERVAL = 1.0
GOSSIP_FANOUT = 3
_GROUP = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Timings:
    """How fast a group elects, beats, gossips and suspects.

    ``election_timeout``: a follower that hears no leader for a random time in
    ``[election_timeout, 1.5 x election_timeout]`` starts an election; the leader sends
    ``append_entries`` (the Raft heartbeat) every ``heartbeat`` = election_timeout/3.
    After a leader dies the first follower stands within 1.5 timeouts of the last
    heartbeat it heard and is elected one vote round trip later, i.e. within 2 timeouts;
    only a split vote (a second candidate within that round trip, splitting the votes)
    costs another round of 1-1.5 timeouts. (pysyncobj requires the window's low end
    above 3 heartbeats, so it cannot start lower.)
    ``gossip_interval``: one SWIM protocol period (a ping to one member, up to ``fanout``
    indirect pings through other members when it does not answer within ``ping_timeout``,
    and a push of fresh membership news to up to ``fanout`` members). A suspected member
    that does not refute within ``suspicion_timeout`` is declared dead.
    """

    election_timeout: float = ELECTION_TIMEOUT
    gossip_interval: float = GOSSIP_INTERVAL
    fanout: int = GOSSIP_FANOUT
    suspicion_timeout: float | None = None

    def __post_init__(self) -> None:
        if not 0.1 <= self.election_timeout <= 600:
            raise ValidationError(
                f"election timeout must be 0.1-600 s, got {self.election_timeout}"
            )
        if not 0.02 <= self.gossip_interval <= 60:
            raise ValidationError(f"gossip interval must be 0.02-60 s, got {self.gossip_interval}")
        if not 1 <= self.fanout <= 10:
            raise ValidationError(f"gossip fan-out must be 1-10, got {self.fanout}")
        if self.suspicion_timeout is not None and not (
            self.gossip_interval <= self.suspicion_timeout <= 3600
        ):
            raise ValidationError(
                "suspicion timeout must be at least one gossip interval (and at most 3600 s)"
            )

    @property
    def heartbeat(self) -> float:
        """Raft heartbeat period: election_timeout / 3."""
        return self.election_timeout / 3

    @property
    def election_window(self) -> tuple[float, float]:
        """The random election timeout range handed to pysyncobj (which wants its minimum
        strictly above 3 heartbeats)."""
        low = self.election_timeout * (1 + 1e-6)
        return low, self.election_timeout * 1.5

    @property
    def ping_timeout(self) -> float:
        """A direct ping unanswered after this long is retried through other members."""
        return self.gossip_interval / 2

    @property
    def suspicion(self) -> float:
        """Seconds a suspect has to refute before it is declared dead (default 3 periods)."""
        return (
            self.suspicion_timeout
            if self.suspicion_timeout is not None
            else 3 * self.gossip_interval
        )


def validate_group(name: str) -> str:
    """A group name: 1-64 letters, digits, '-' or '_' (it names directories and subjects)."""
    if not isinstance(name, str) or not _GROUP.match(name):
        raise ValidationError(f"invalid group {name!r}: use 1-64 letters, digits, '-' or '_'")
    return name


def parse_address(value: str) -> str:
    """``host:port`` normalized (``localhost`` stays a name); raises ValidationError."""
    raw = value.strip()
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValidationError(f"cluster node {value!r} is not host:port")
    if not 1 <= int(port) <= 65535:
        raise ValidationError(f"cluster node {value!r}: port must be 1-65535")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not _HOST.match(host):
            raise ValidationError(f"cluster node {value!r}: {host!r} is not a host name") from None
    return f"{host}:{int(port)}"


def parse_cluster(nodes: Iterable[str], own: str | None) -> tuple[str, list[str]]:
    """The own address and the sorted peers from ``--address`` and ``--cluster-nodes``.

    ``nodes`` may be comma- or space-separated and may list the own address too (one list
    for every member). A duplicate, an entry that is not ``host:port`` or a missing own
    address raises :class:`ValidationError`.
    """
    if not own:
        raise ValidationError("own address missing: pass --address host:port")
    me = parse_address(own)
    seen: set[str] = set()
    peers: list[str] = []
    for chunk in nodes:
        for item in re.split(r"[,\s]+", chunk):
            if not item:
                continue
            addr = parse_address(item)
            if addr in seen:
                raise ValidationError(f"cluster node {addr} is listed twice")
            seen.add(addr)
            if addr != me:
                peers.append(addr)
    return me, sorted(peers)
