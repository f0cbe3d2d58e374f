"""One object for everything durable: event store, read-model database, projector,
queries. Built from ``DATABASE_URL`` by :func:`open_persistence`.

With ``memory://`` the events live in memory and the read models in a throw-away SQLite
file (removed on close), so the same projections and queries run everywhere.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from agentmesh.security.crypto import EncryptionService
from agentmesh.store.base import FullEventStore
from agentmesh.store.db import Database
from agentmesh.store.factory import create_event_store
from agentmesh.store.projections import Projector
from agentmesh.store.queries import ReadModels
from agentmesh.store.sealing import SealedStore, Sealer


@dataclass
class Persistence:
    """The store, its read-model database, a projector and the read-model queries."""

    store: FullEventStore
    db: Database
    projector: Projector
    read_models: ReadModels
    _tmpdir: str | None = field(default=None, repr=False)
    raw: FullEventStore | None = field(default=None, repr=False)
    """The store without sealing (``store`` wraps it when payloads are sealed)."""

    async def close(self) -> None:
        await self.store.close()
        if self.db is not getattr(self.raw or self.store, "db", None):
            await self.db.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


async def open_persistence(
    url: str, *, batch_size: int = 1000, crypto: EncryptionService | None = None
) -> Persistence:
    """Connect (and migrate) the store at ``url`` and wire projections and queries.

    With ``crypto`` task payloads and results are sealed at rest (events, outbox, task
    read model; see :mod:`agentmesh.store.sealing`) and opened on every read."""
    from agentmesh.store.sql import SqlEventStore

    raw = create_event_store(url)
    await raw.connect()
    sealer = Sealer(crypto) if crypto is not None else None
    store: FullEventStore = raw if sealer is None else SealedStore(raw, sealer)
    tmpdir: str | None = None
    if isinstance(raw, SqlEventStore):
        db = raw.db
    else:
        from agentmesh.store.migrate import migrate
        from agentmesh.store.sqlite import SqliteDatabase

        tmpdir = tempfile.mkdtemp(prefix="agentmesh-readmodels-")
        read_url = f"sqlite+aiosqlite:///{Path(tmpdir) / 'read.db'}"
        await migrate(read_url)
        db = SqliteDatabase(read_url)
        await db.connect()
    projector = Projector(store, db, batch_size=batch_size, sealer=sealer)
    return Persistence(store, db, projector, ReadModels(db, sealer), tmpdir, raw)
