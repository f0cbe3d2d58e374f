"""Metrics fed by code paths shared by every process: database queries and connections,
cache hit rates, received messages, agent health checks and collaboration events.

* :func:`metered` wraps a store connection: every query is timed into
  ``agentmesh_db_query_duration_seconds{query_type}`` (the SQL verb: select, insert,
  update, delete, other: a bounded label).
* :func:`track_database` makes a database count in ``agentmesh_db_connections_active``
  (open connections of every connected database of the process, read at scrape time).
* :func:`track_cache` exposes a ``functools.lru_cache``'s hit rate as
  ``agentmesh_cache_hit_rate{cache_type}`` (read at scrape time).
* :func:`received` counts a delivered envelope in ``messages_received_total{platform,
  topic}`` (the broker, from :func:`platform_of`, and the subject kind: task, evt, hb ...
  both bounded).
* :func:`collaboration` counts a multi-agent pattern event in
  ``agentmesh_collaboration_events_total{tenant_id, event_type}``.
* :func:`serve_process_metrics` serves the registry on ``PROMETHEUS_PORT`` (agent processes).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, Protocol

from loguru import logger
from prometheus_client import start_http_server

from agentmesh.envelope import Envelope
from agentmesh.observability import metrics

__all__ = [
    "MeteredConnection",
    "collaboration",
    "metered",
    "observe_query",
    "platform_of",
    "query_type",
    "received",
    "serve_process_metrics",
    "track_cache",
    "track_database",
]

_VERBS = frozenset({"select", "insert", "update", "delete", "with", "begin", "commit"})


@lru_cache(maxsize=2048)
def query_type(sql: str) -> str:
    """The bounded ``query_type`` label of a statement (its leading SQL verb)."""
    head = sql.lstrip().split(None, 1)
    verb = head[0].lower() if head else ""
    if verb == "with":
        return "select"
    return verb if verb in _VERBS else "other"


class _Conn(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> None: ...
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


_children: dict[str, Any] = {}


def observe_query(sql: str, started: float) -> None:
    """Record one statement's duration (``started``: its ``time.perf_counter()``)."""
    _observe(sql, started)


def _observe(sql: str, started: float) -> None:
    kind = query_type(sql)
    child = _children.get(kind)
    if child is None:
        child = _children[kind] = metrics.db_query_duration.labels(kind)
    child.observe(time.perf_counter() - started)


class MeteredConnection:
    """A store connection whose queries are timed (see the module docstring)."""

    __slots__ = ("_c",)

    def __init__(self, conn: _Conn) -> None:
        self._c = conn

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        started = time.perf_counter()
        try:
            return await self._c.fetch(sql, *args)
        finally:
            _observe(sql, started)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self._c.fetchval(sql, *args)
        finally:
            _observe(sql, started)

    async def execute(self, sql: str, *args: Any) -> None:
        started = time.perf_counter()
        try:
            await self._c.execute(sql, *args)
        finally:
            _observe(sql, started)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        started = time.perf_counter()
        try:
            await self._c.executemany(sql, rows)
        finally:
            _observe(sql, started)


def metered(conn: _Conn) -> MeteredConnection:
    """``conn`` with every query timed."""
    return MeteredConnection(conn)


class _CountsConnections(Protocol):
    def open_connections(self) -> int: ...


_databases: weakref.WeakSet[Any] = weakref.WeakSet()


def _open_connections() -> float:
    return float(sum(db.open_connections() for db in list(_databases)))


metrics.db_connections_active.set_function(_open_connections)


def track_database(db: _CountsConnections) -> None:
    """Count ``db``'s open connections in ``agentmesh_db_connections_active``."""
    _databases.add(db)


def track_cache(cache_type: str, cached: Any) -> None:
    """Expose the hit rate of an ``lru_cache``-wrapped function ``cached``."""

    def rate() -> float:
        info = cached.cache_info()
        total = info.hits + info.misses
        return info.hits / total if total else 0.0

    metrics.cache_hit_rate.labels(cache_type).set_function(rate)


track_cache("sql_query_type", query_type)


def platform_of(publish: Callable[..., Any]) -> str:
    """The broker name (``nats``, ``kafka``, ``memory`` ...) of a transport's bound method."""
    owner = getattr(publish, "__self__", None)
    if owner is None:
        return "unknown"
    return type(owner).__module__.rsplit(".", 1)[-1].split("_", 1)[0]


def received(platform: str) -> Callable[[str], None]:
    """What counts one delivered message of ``platform`` by its subject's kind (task, evt,
    hb ...): the label set of a subject is remembered (a dispatcher sees few subjects;
    unique ones, like reply inboxes, only refill the memo)."""
    inc = metrics.messages_received.inc
    labels_of: dict[str, tuple[str, str]] = {}

    def count(subject: str) -> None:
        labels = labels_of.get(subject)
        if labels is None:
            parts = subject.split(".", 3)
            labels = (platform, parts[2] if len(parts) > 2 else "other")
            if len(labels_of) >= 256:
                labels_of.clear()
            labels_of[subject] = labels
        inc(labels)

    return count


def collaboration(env: Envelope) -> None:
    """Count one multi-agent pattern event (its envelope type: market.bid, swarm.* ...)."""
    metrics.collaboration_events.labels(env.tenant_id, env.type or "unknown").inc()


def serve_process_metrics(
    enabled: bool, port: int, host: str, announce: Callable[[str], None]
) -> int | None:
    """Serve ``/metrics`` on ``port`` (0 picks a free one) when ``enabled``; the port, or
    None. A port already in use is a warning, not a failure of the process."""
    if not enabled:
        return None
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.REGISTRY)
    except OSError as exc:
        logger.warning("metrics not served: cannot listen on {}:{}: {}", host, port, exc)
        return None
    bound = int(server.server_address[1])
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    announce(f"Metrics: http://{shown}:{bound}/metrics")
    return bound


_requested: list[Callable[[], int | None]] = []


def request_process_metrics(
    enabled: bool, port: int, host: str, announce: Callable[[str], None]
) -> None:
    """Serve ``/metrics`` (see :func:`serve_process_metrics`) once this process's mesh
    starts: after its command line was checked, so bad input stays one error line."""
    _requested.append(lambda: serve_process_metrics(enabled, port, host, announce))


def start_requested_metrics() -> None:
    """Start the metrics server requested for this process, if any (once)."""
    while _requested:
        _requested.pop()()
