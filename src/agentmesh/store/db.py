"""A thin async SQL seam over aiosqlite and asyncpg, shared by the event store and the
read models.

SQL is written once with ``?`` placeholders in the common subset of SQLite and
PostgreSQL (``ON CONFLICT ... DO UPDATE``, ``RETURNING``); the PostgreSQL adapter
rewrites the placeholders to ``$n``. ``write()`` is a serialized write transaction
(``BEGIN IMMEDIATE`` on SQLite); ``read()`` is a consistent read snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]


class Connection(Protocol):
    """One connection inside a transaction."""

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...

    async def fetchval(self, sql: str, *args: Any) -> Any: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class Database(Protocol):
    """A pool of connections to one SQLite file or PostgreSQL database."""

    url: str
    dialect: Dialect

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    def write(self) -> AbstractAsyncContextManager[Connection]:
        """A write transaction; writers are serialized, commit on exit, rollback on error."""
        ...

    def read(self) -> AbstractAsyncContextManager[Connection]:
        """A read-only snapshot."""
        ...

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows of one read statement (its own snapshot): one round trip instead of
        a transaction's three on the hot single-statement reads."""
        ...


def safe_url(url: str) -> str:
    """``url`` without credentials (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def utc_now_text() -> str:
    """Now, UTC, ISO 8601 with microseconds: the stores' ``created_at``/``occurred_at`` form."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
