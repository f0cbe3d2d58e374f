"""Row 8: the event store at 10 writers x 100 batches x 100 events with 2 live readers:
positions 1..100,000 unique, gapless and every batch contiguous, on SQLite and PostgreSQL
(the contract suite's concurrency case, run at the target size)."""

from __future__ import annotations

import pytest

from agentmesh.store import FullEventStore
from tests.chaos.conftest import FULL, Report, size
from tests.contract import store_fixtures
from tests.contract.store_fixtures import open_store
from tests.contract.test_event_store_contract import concurrent_writers_and_readers

pytestmark = pytest.mark.integration
pg_template = store_fixtures.pg_template
sql_store_url = store_fixtures.sql_store_url


@pytest.mark.timeout(1800 if FULL else 120)
async def test_gapless_contiguous_at_scale(sql_store_url: str, report: Report) -> None:
    writers, appends, batch = 10, size(100, 20), size(100, 10)
    total = writers * appends * batch
    kind = "PostgreSQL" if sql_store_url.startswith("postgres") else "SQLite"
    store: FullEventStore
    async with open_store(sql_store_url) as store:
        try:
            seconds = await concurrent_writers_and_readers(
                sql_store_url, store, writers=writers, appends=appends, batch=batch
            )
        except AssertionError:
            report(
                "8 event store", f"{kind}: {writers}x{appends}x{batch} + 2 readers", "broken", False
            )
            raise
    report(
        "8 event store",
        f"{kind}: {writers} writers x {appends} x {batch} + 2 live readers: 1..{total} "
        "gapless, unique, batches contiguous",
        f"held, {total / seconds:,.0f} events/s ({seconds:.1f} s)",
        True,
    )
