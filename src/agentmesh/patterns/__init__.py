"""Coordination patterns over the broker: orchestrator-worker, hierarchical, blackboard,
market-based (contract net) and swarm. Each is a protocol between agents in any number of
processes; see ``examples/README.md`` for when to use which."""
