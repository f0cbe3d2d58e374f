"""The server of ``bench.api``: the control plane and, under ``/raw``, bare FastAPI routes
on the same uvicorn (``python -m bench.api_server PORT RAW_DB``).

``/raw/...`` answers without any I/O; ``/raw/sql/...`` does the least a durable API must
do (one SQLite SELECT, or one INSERT committed in WAL mode, as our store runs it).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import aiosqlite
import uvicorn
from fastapi import FastAPI

from agentmesh.api.fastapi_app import create_app
from agentmesh.config import Settings

raw = FastAPI()
_sql: dict[str, Any] = {"lock": asyncio.Lock()}


async def _db() -> aiosqlite.Connection:
    if "conn" not in _sql:
        conn = await aiosqlite.connect(sys.argv[2], isolation_level=None)
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, doc TEXT)")
        await conn.execute("INSERT OR IGNORE INTO t VALUES ('bench-agent', '{}')")
        _sql["conn"] = conn
    conn: aiosqlite.Connection = _sql["conn"]
    return conn


@raw.get("/raw/sql/agents/{agent_id}")
async def raw_sql_get(agent_id: str) -> dict[str, Any]:
    conn = await _db()
    async with conn.execute("SELECT doc FROM t WHERE id = ?", (agent_id,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    return {"agent_id": agent_id, **json.loads(row[0])}


@raw.post("/raw/sql/tasks", status_code=201)
async def raw_sql_post(body: dict[str, Any]) -> dict[str, Any]:
    conn = await _db()
    task_id = str(uuid.uuid4())
    async with _sql["lock"]:
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute("INSERT INTO t VALUES (?, ?)", (task_id, json.dumps(body)))
        await conn.execute("COMMIT")
    return {"task_id": task_id, "status": "offered", **body}


@raw.get("/raw/agents/{agent_id}")
async def raw_get(agent_id: str) -> dict[str, Any]:
    return {"agent_id": agent_id, "status": "AVAILABLE"}


@raw.post("/raw/tasks", status_code=201)
async def raw_post(body: dict[str, Any]) -> dict[str, Any]:
    return {"task_id": "t", "status": "offered", **body}


def main() -> None:
    ours = create_app(Settings())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/raw"):
            await raw(scope, receive, send)
        else:
            await ours(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")


if __name__ == "__main__":
    main()
