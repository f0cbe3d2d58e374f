"""Row 9: the outbox relay stopped at 1,000 seeded points (its deterministic fault hook:
before a publish, after it, before the mark), each time replaced by a fresh relay, as
after a kill; SQLite and PostgreSQL. Every envelope is published, first publications in
commit order, and only rows published but not yet marked at a crash are published again
(at most one batch per crash)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from agentmesh.envelope import Envelope
from agentmesh.errors import RelayInterrupted
from agentmesh.store import FullEventStore, OutboxMessage
from agentmesh.store.outbox import OutboxRelay
from tests.chaos.conftest import FULL, Report, size
from tests.contract import store_fixtures
from tests.contract.store_fixtures import open_store
from tests.contract.test_event_store_contract import events

pytestmark = pytest.mark.integration
pg_template = store_fixtures.pg_template
sql_store_url = store_fixtures.sql_store_url
ROW = "9 outbox faults"
MAX_BATCH = 10


class Broker:
    """Stands in for the transport: records every publication (the relay's only call)."""

    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, subject: str, envelope: Envelope, *, durable: bool = False) -> None:
        self.published.append(envelope.id)


class Faults:
    """Stops the relay at its ``next_at``-th crash point, then disarms."""

    def __init__(self, next_at: int) -> None:
        self.calls = 0
        self.next_at = next_at
        self.points: list[str] = []

    def __call__(self, point: str) -> bool:
        self.calls += 1
        if self.calls == self.next_at:
            self.points.append(point)
            return True
        return False


@pytest.mark.timeout(900 if FULL else 120)
async def test_relay_killed_at_many_points_loses_nothing(
    sql_store_url: str, report: Report
) -> None:
    crashes = size(1000, 60)
    streams, per_stream = size(50, 10), size(20, 5)
    kind = "PostgreSQL" if sql_store_url.startswith("postgres") else "SQLite"
    rng = random.Random(9)
    store: FullEventStore
    async with open_store(sql_store_url) as store:
        order: list[str] = []
        for s in range(streams):
            for v in range(per_stream):
                env = Envelope.create("t", {"s": s, "v": v}, tenant_id="acme")
                order.append(env.id)
                await store.append(
                    "acme",
                    f"s{s}",
                    v,
                    events("acme", f"s{s}"),
                    outbox=[OutboxMessage("am.acme.evt.t", env)],
                )
        broker = Broker()
        where: dict[str, int] = {}
        done_crashes = 0
        while done_crashes < crashes:
            # a fresh relay (a restarted process) that dies at a seeded point
            faults = Faults(rng.randint(1, 3 * min(per_stream, 10)))
            relay = OutboxRelay(store, broker, batch_size=rng.randint(1, MAX_BATCH), fault=faults)  # type: ignore[arg-type]
            try:
                await relay.drain(timeout=60)
            except RelayInterrupted:
                done_crashes += 1
                for p in faults.points:
                    where[p] = where.get(p, 0) + 1
                if await store.outbox_pending_count() == 0:
                    # everything is out: start over with new rows so crashes keep biting
                    for _ in range(5):
                        env = Envelope.create("t", {"extra": True}, tenant_id="acme")
                        order.append(env.id)
                        version = await store.stream_version("acme", "extra")
                        await store.append(
                            "acme",
                            "extra",
                            version,
                            events("acme", "extra"),
                            outbox=[OutboxMessage("am.acme.evt.t", env)],
                        )
        await OutboxRelay(store, broker).drain(timeout=120)  # type: ignore[arg-type]
        pending = await store.outbox_pending_count()
    first_seen: list[str] = []
    seen: set[str] = set()
    for eid in broker.published:
        if eid not in seen:
            seen.add(eid)
            first_seen.append(eid)
    duplicates = len(broker.published) - len(seen)
    lost = set(order) - seen
    in_order = first_seen == order
    stats: dict[str, Any] = {"lost": len(lost), "dup": duplicates, "where": where}
    report(
        ROW,
        f"{kind}: relay stopped at {crashes} seeded points, {len(order)} envelopes: 0 lost, "
        "in commit order, re-published <= 1 batch (<= 10) per crash",
        f"{stats['lost']} lost, order kept {in_order}, {duplicates} re-published, "
        f"pending {pending}, points {where}",
        not lost and in_order and duplicates <= crashes * MAX_BATCH and pending == 0,
    )
    assert not lost
    assert in_order
    assert duplicates <= crashes * MAX_BATCH
    assert pending == 0
    assert set(where) == {"before_publish", "after_publish", "before_mark"}
