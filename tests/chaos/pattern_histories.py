"""Recording the demo and the five coordination patterns as golden histories (row 10).

Each history comes from the product's real paths: a control plane
(:class:`~agentmesh.application.Application`: SQLite store, task recorder, tracker,
projector) on an in-memory broker, and on the same broker either the demo workload of
``agentmesh up --demo`` (its agents, its tasks submitted through the store) or one of
``examples/*.py`` run whole (its own :class:`~agentmesh.mesh.Mesh`, whose tasks only the
control plane's recorder writes to the store). Once the store is quiet, its events and
read models are written as ``tests/golden/histories/<name>.json``, the format of
:mod:`tests.chaos.histories`.

The pattern logic and the demo's choices are deterministic (seeded); ids and times are
not (uuid4 and the clock), nor the order in which concurrent tasks finish. Re-record::

    .venv/bin/python -m tests.chaos.pattern_histories            # all six
    .venv/bin/python -m tests.chaos.pattern_histories market     # one
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from agentmesh.agents.demo import DEMO_TENANT, TEXTS, DemoWorkload
from agentmesh.application import Application
from agentmesh.commands import CreateTenant, SubmitTask
from agentmesh.config import Settings
from agentmesh.domain.task_values import TERMINAL
from agentmesh.store.persistence import Persistence
from tests.chaos.histories import GOLDEN, export, snapshot
from tests.helpers import load_example

PATTERNS = ("orchestrator_worker", "hierarchical", "blackboard", "market", "swarm")
FAST = {
    "AGENTMESH_HEARTBEAT_INTERVAL": "0.2",
    "AGENTMESH_HEALTH_CHECK_TIMEOUT": "1.5",
    "AGENTMESH_ACK_WAIT": "2",
}
DEMO_TASKS = 12

Workload = Callable[[Application, str, str], Awaitable[None]]


def settings_for(tmp: Path) -> Settings:
    return Settings(
        jwt_secret_key="history-secret-" + "h" * 49,
        encryption_key=Fernet.generate_key().decode(),
        database_url=f"sqlite+aiosqlite:///{tmp / 'agentmesh.db'}",
        environment="testing",
        agentmesh_data_dir=tmp,
    )


def run_example(name: str) -> Workload:
    async def run(app: Application, url: str, tenant: str) -> None:
        await app.bus.execute(CreateTenant(name.replace("_", " ").title(), tenant_id=tenant))
        out = await load_example(name, f"history_{name}").main(url, "all")
        assert out, f"{name}: the example returned {out!r}"

    return run


async def run_demo(app: Application, url: str, tenant: str) -> None:
    """What ``agentmesh up --demo`` does, for :data:`DEMO_TASKS` tasks."""
    rng = random.Random(19)
    await app.bus.execute(CreateTenant("demo", tenant_id=DEMO_TENANT))
    caps = ["summarize", "analyze", "translate", "analyze"]
    for i in range(DEMO_TASKS):
        text = rng.choice(TEXTS)
        await app.bus.execute(SubmitTask(DEMO_TENANT, caps[i % 4], {"text": text}, source="demo"))
        await asyncio.sleep(0.1)


async def quiet(p: Persistence, timeout: float = 60.0, still: float = 1.5) -> None:
    """Until every recorded task is finished and no event was written for ``still`` s."""
    deadline = time.monotonic() + timeout
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        events = len(await export(p))
        if events != count:
            count, since = events, time.monotonic()
        elif time.monotonic() - since >= still:
            models = await snapshot(p)
            open_tasks = [
                t["task_id"]
                for m in models.values()
                for t in m["tasks"]
                if t["status"] not in TERMINAL
            ]
            if not open_tasks:
                return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the store did not settle within {timeout} s")


async def record_one(name: str) -> dict[str, Any]:
    """Run one workload against a fresh control plane; its history."""
    tenant = DEMO_TENANT if name == "demo" else f"h-{name.replace('_', '-')}"
    url = f"memory://history-{name}-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {
                **FAST,
                "AGENTMESH_TENANT": tenant,
                "AGENTMESH_DATA_DIR": tmp,
                "BOARD": f"board-{name.replace('_', '-')}",
            }
        )
        app = Application.from_settings(settings_for(Path(tmp)), transport_url=url, tenant=tenant)
        workload: Workload = run_example(name) if name != "demo" else run_demo
        demo = DemoWorkload(app.mesh) if name == "demo" else None
        await app.start()
        try:
            assert app.plane.persistence is not None
            await workload(app, url, tenant)
            await quiet(app.plane.persistence)
            events = await export(app.plane.persistence)
            models = await snapshot(app.plane.persistence)
        finally:
            if demo is not None:
                await demo.stop()
            await app.stop()
    return {"source": name, "events": events, "read_models": models}


def main(argv: list[str]) -> int:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in argv or ["demo", *PATTERNS]:
        random.seed(19)
        history = asyncio.run(record_one(name))
        path = GOLDEN / f"{name.replace('_', '-')}.json"
        path.write_text(json.dumps(history, indent=1, sort_keys=True) + "\n")
        tasks = sum(len(m["tasks"]) for m in history["read_models"].values())
        print(f"{path}: {len(history['events'])} events, {tasks} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
