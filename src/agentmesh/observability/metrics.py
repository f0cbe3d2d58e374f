"""Prometheus metrics (``agentmesh_*``), in one registry the runtime, store and API update.

Import the module-level metric objects and update them; expose with :func:`exposition`
(``GET /metrics``) or :func:`serve` (``PROMETHEUS_PORT``). ``agent_id`` labels are
unbounded in cardinality: they are kept on per-agent series only, never on tenant-wide ones.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    start_http_server,
)
from prometheus_client.exposition import choose_encoder

from agentmesh.observability.tally import TallyCounter

REGISTRY = CollectorRegistry(auto_describe=True)

messages_routed = Counter(
    "agentmesh_messages_routed_total",
    "Messages routed",
    ["tenant_id", "message_type", "routing_strategy"],
    registry=REGISTRY,
)
message_routing_latency = Histogram(
    "agentmesh_message_routing_latency_seconds",
    "Routing latency",
    ["routing_strategy", "tenant_id"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
routing_errors = Counter(
    "agentmesh_routing_errors_total",
    "Routing errors",
    ["tenant_id", "error_type"],
    registry=REGISTRY,
)
messages_in_queue = Gauge(
    "agentmesh_messages_in_queue",
    "Messages waiting or in flight",
    ["tenant_id", "queue_name"],
    registry=REGISTRY,
)
active_agents = Gauge(
    "agentmesh_active_agents", "Agents by status", ["tenant_id", "status"], registry=REGISTRY
)
agent_state_changes = Counter(
    "agentmesh_agent_state_changes_total",
    "Agent status transitions",
    ["agent_id", "from_status", "to_status"],
    registry=REGISTRY,
)
health_check_failures = Counter(
    "agentmesh_health_check_failures_total",
    "Failed health checks",
    ["agent_id", "failure_reason"],
    registry=REGISTRY,
)
health_check_duration = Histogram(
    "agentmesh_health_check_duration_seconds",
    "Health check duration",
    ["agent_id"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1),
    registry=REGISTRY,
)
agent_load_percent = Gauge(
    "agentmesh_agent_load_percent", "Agent load (0-100)", ["agent_id"], registry=REGISTRY
)
agent_capability_coverage = Gauge(
    "agentmesh_agent_capability_coverage",
    "Agents offering a capability",
    ["tenant_id", "capability"],
    registry=REGISTRY,
)
task_execution_seconds = Histogram(
    "agentmesh_task_execution_seconds",
    "Task execution time",
    ["agent_id", "task_type"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
tasks_completed = Counter(
    "agentmesh_tasks_completed_total",
    "Tasks finished",
    ["agent_id", "task_type", "task_status"],
    registry=REGISTRY,
)
task_failures = Counter(
    "agentmesh_task_failures_total",
    "Task failures",
    ["agent_id", "task_type", "failure_reason"],
    registry=REGISTRY,
)
tasks_in_progress = Gauge(
    "agentmesh_tasks_in_progress", "Tasks running", ["tenant_id", "agent_id"], registry=REGISTRY
)
db_connections_active = Gauge(
    "agentmesh_db_connections_active", "Open database connections", registry=REGISTRY
)
cache_hit_rate = Gauge(
    "agentmesh_cache_hit_rate", "Cache hit rate", ["cache_type"], registry=REGISTRY
)
db_query_duration = Histogram(
    "agentmesh_db_query_duration_seconds",
    "Database query time",
    ["query_type"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
    registry=REGISTRY,
)
agents_created = Counter(
    "agentmesh_agents_created_total", "Agents created", ["tenant_id"], registry=REGISTRY
)
agents_terminated = Counter(
    "agentmesh_agents_terminated_total", "Agents terminated", ["tenant_id"], registry=REGISTRY
)
tenant_agents = Gauge(
    "agentmesh_tenant_agents_total", "Agents per tenant", ["tenant_id"], registry=REGISTRY
)
collaboration_events = Counter(
    "agentmesh_collaboration_events_total",
    "Multi-agent events",
    ["tenant_id", "event_type"],
    registry=REGISTRY,
)
critical_errors = Counter(
    "agentmesh_critical_errors_total",
    "Critical errors",
    ["error_type", "component"],
    registry=REGISTRY,
)
error_rate = Gauge(
    "agentmesh_error_rate", "Error rate per component", ["component"], registry=REGISTRY
)
info = Info("agentmesh", "AgentMesh build information", registry=REGISTRY)

# legacy names of the seed's utils/metrics.py
messages_sent = Counter(
    "messages_sent_total", "Messages sent", ["platform", "topic"], registry=REGISTRY
)
messages_received = TallyCounter(
    "messages_received_total", "Messages received", ("platform", "topic"), registry=REGISTRY
)
"""Counted once per delivered message: a :class:`TallyCounter` (no lock per message)."""
events_saved = Counter(
    "event_store_events_saved_total",
    "Events appended to the store",
    ["tenant_id", "event_type"],
    registry=REGISTRY,
)
commands_dispatched = Counter(
    "commands_dispatched_total", "Commands dispatched", ["command_type"], registry=REGISTRY
)
projection_lag = Gauge(
    "agentmesh_projection_lag_events",
    "Events a projection is behind the store head",
    ["projection"],
    registry=REGISTRY,
)


def set_info(version: str, environment: str, commit: str = "unknown") -> None:
    info.info({"version": version, "environment": environment, "commit": commit})


def exposition(accept: str = "") -> tuple[bytes, str]:
    """(body, content type) for ``GET /metrics``: the Prometheus text format, or OpenMetrics
    (which carries the exemplars linking latency buckets to traces) when the ``Accept``
    header asks for ``application/openmetrics-text``."""
    if "application/openmetrics-text" in accept:
        encode, content_type = choose_encoder(accept)
        return encode(REGISTRY), content_type
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose the registry on its own port (``PROMETHEUS_PORT``)."""
    start_http_server(port, addr=host, registry=REGISTRY)


circuit_breaker_state = Gauge(
    "agentmesh_circuit_breaker_state",
    "Circuit breaker state (0 closed, 1 half-open, 2 open)",
    ["name"],
    registry=REGISTRY,
)
anomalies = Counter(
    "agentmesh_anomalies_total",
    "Anomalies raised on the live streams (task_latency, failure_rate, queue_depth, heartbeat_gap)",
    ["tenant_id", "stream"],
    registry=REGISTRY,
)
tasks_declined = Counter(
    "agentmesh_tasks_declined_total",
    "Offers an agent declined (autonomy or capacity)",
    ["tenant_id", "agent_id", "reason"],
    registry=REGISTRY,
)
alignment_score = Gauge(
    "agentmesh_alignment_score",
    "Alignment score of an agent (aligned >= 0.7, misaligned < 0.49)",
    ["agent_id"],
    registry=REGISTRY,
)
safety_violations = Counter(
    "agentmesh_safety_violations_total",
    "Safety rule findings that denied or redacted a task or a result",
    ["rule", "severity"],
    registry=REGISTRY,
)
