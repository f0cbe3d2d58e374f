"""Subject and key names of the coordination patterns, built on :mod:`agentmesh.subjects`.

Every pattern talks on tenant-first subjects:

* market (contract net): ``am.<t>.mkt.cfp.<capability>``, ``am.<t>.mkt.award.<agent>``,
  ``am.<t>.mkt.result.<auction>``, ``am.<t>.mkt.settle.<auction>``;
* blackboard change notices: ``am.<t>.bb.<domain>``;
* hierarchy: ``am.<t>.evt.hier.up.<parent>`` and ``am.<t>.evt.hier.lateral.<level>``;
* swarm: ``am.<t>.evt.swarm.<swarm>.<kind>`` (metrics, knowledge, help ...);
* orchestration progress: ``am.<t>.evt.orchestration.<run>``.

Key-value keys (blackboard entries, swarm state) are ``<tenant>.<area>.<...>`` with the
same token rules as subjects.
"""

from __future__ import annotations

from agentmesh import ids, subjects


def _token(value: str, what: str) -> str:
    """``value`` when it is one subject token (the name-segment rule of :mod:`agentmesh.ids`)."""
    return ids.check_segment(value, what)


def cfp(tenant: str, capability: str) -> str:
    """Call for proposals of a capability."""
    return subjects.market(tenant, "cfp", capability)


def award(tenant: str, agent_id: str) -> str:
    """Awards (and revocations) for one bidder."""
    return subjects.market(tenant, "award", agent_id)


def bids(tenant: str, auction_id: str) -> str:
    """Where bidders answer one call for proposals."""
    return subjects.market(tenant, "bid", auction_id)


def market_result(tenant: str, auction_id: str) -> str:
    """Where the winner of an auction reports its result."""
    return subjects.market(tenant, "result", auction_id)


def settlement(tenant: str, auction_id: str) -> str:
    """Settlement of one auction (price paid, outcome), seen by every bidder."""
    return subjects.market(tenant, "settle", auction_id)


def settlements(tenant: str) -> str:
    """Every settlement of a tenant (bidders learn reputation from it)."""
    return subjects.market(tenant, "settle", "any").rsplit(".", 1)[0] + ".*"


def blackboard(tenant: str, domain: str) -> str:
    """Change notices of one blackboard domain."""
    return subjects.blackboard(tenant, domain)


def hierarchy_up(tenant: str, parent_id: str) -> str:
    """Events a node reports to its parent."""
    return subjects.event(tenant, f"hier.up.{_token(parent_id, 'parent id')}")


def hierarchy_lateral(tenant: str, level: int) -> str:
    """Peer coordination within one level of a hierarchy."""
    return subjects.event(tenant, f"hier.lateral.L{int(level)}")


def swarm(tenant: str, swarm_id: str, kind: str) -> str:
    """Swarm traffic of one kind (``metrics``, ``knowledge``, ``help``, ``members`` ...)."""
    return subjects.event(tenant, f"swarm.{_token(swarm_id, 'swarm id')}.{_token(kind, 'kind')}")


def orchestration(tenant: str, run_id: str) -> str:
    """Progress events of one orchestrator-worker run."""
    return subjects.event(tenant, f"orchestration.{_token(run_id, 'run id')}")


def kv_key(tenant: str, *parts: str) -> str:
    """A key-value key ``<tenant>.<part>...``; every part is one subject token."""
    return ".".join(_token(p, "key part") for p in (tenant, *parts))
