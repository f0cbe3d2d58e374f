"""Decentralized coordination: Raft (pysyncobj) and SWIM gossip between agents.

See :class:`DecentralizedAgent`; the pure parts (:class:`ClusterState`,
:class:`Membership`, :class:`Timings`) are usable and testable without a network.
"""

from agentmesh.decentralized.agent import MESSAGE_TYPES, DecentralizedAgent
from agentmesh.decentralized.config import Timings, parse_address, parse_cluster
from agentmesh.decentralized.membership import Membership
from agentmesh.decentralized.raft import RaftNode
from agentmesh.decentralized.state import ClusterState
from agentmesh.decentralized.views import collect_groups

__all__ = [
    "MESSAGE_TYPES",
    "ClusterState",
    "DecentralizedAgent",
    "Membership",
    "RaftNode",
    "Timings",
    "collect_groups",
    "parse_address",
    "parse_cluster",
]
