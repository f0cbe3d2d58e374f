"""Which task ledger a transport gets (runtime.ledger.ledger_for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentmesh.config import Settings
from agentmesh.runtime.ledger import (
    KvLedger,
    ledger_for,
    shared_ledger_url,
    unique_first_delivery,
)
from agentmesh.runtime.ledger_redis import RedisLedger
from agentmesh.runtime.ledger_sql import SqlLedger
from agentmesh.transports import create_transport


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(agentmesh_data_dir=tmp_path, **kw)  # type: ignore[call-arg]


def test_brokers_with_their_own_store_keep_the_ledger(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    nats = create_transport("nats://127.0.0.1:4222")
    memory = create_transport("memory://ledger-test")
    on_nats, on_memory = ledger_for(nats, s), ledger_for(memory, s)
    assert isinstance(on_nats, KvLedger)
    assert on_nats.events is nats  # the outcome events are the outcome record
    assert isinstance(on_memory, KvLedger)
    assert on_memory.events is None
    other = create_transport("memory://ledger-test")
    other_ledger = ledger_for(other, s)
    assert isinstance(other_ledger, KvLedger)
    assert other_ledger.kv is on_memory.kv  # one broker, one bucket
    assert unique_first_delivery(nats)
    assert unique_first_delivery(memory)


def test_one_ledger_per_transport(tmp_path: Path) -> None:
    t = create_transport("amqp://guest:guest@127.0.0.1:5672/")
    assert ledger_for(t, _settings(tmp_path)) is ledger_for(t)
    assert not unique_first_delivery(t)


@pytest.mark.parametrize(
    ("transport", "settings", "expected"),
    [
        ("redis://127.0.0.1:6379/0", {}, "redis://127.0.0.1:6379/0"),
        ("amqp://guest:guest@127.0.0.1:5672/", {"redis_url": "redis://h:1/2"}, "redis://h:1/2"),
        (
            "kafka://127.0.0.1:9092",
            {"database_url": "postgresql+asyncpg://u@h/db"},
            "postgresql+asyncpg://u@h/db",
        ),
        ("kafka://127.0.0.1:9092", {"database_url": "memory://"}, "local"),
        ("kafka://127.0.0.1:9092", {"task_ledger_url": "sqlite:///x.db"}, "sqlite:///x.db"),
        ("redis://127.0.0.1:6379/0", {"task_ledger_url": "local"}, "local"),
    ],
)
def test_shared_ledger_url(
    tmp_path: Path, transport: str, settings: dict[str, Any], expected: str
) -> None:
    t = create_transport(transport)
    assert shared_ledger_url(t, _settings(tmp_path, **settings)) == expected


def test_default_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    t = create_transport("amqp://guest:guest@127.0.0.1:5672/")
    url = shared_ledger_url(t, _settings(tmp_path))
    assert url == f"sqlite+aiosqlite:///{(tmp_path / 'ledger.db').resolve()}"
    assert isinstance(ledger_for(t, _settings(tmp_path)), SqlLedger)
    r = create_transport("redis://127.0.0.1:6379/0")
    assert isinstance(ledger_for(r, _settings(tmp_path)), RedisLedger)


def test_a_redelivery_window_longer_than_the_ledger_retention_refuses_to_start(
    tmp_path: Path,
) -> None:
    from agentmesh.errors import ConfigError
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.ledger import TTL_SECONDS

    fits = _settings(tmp_path, agentmesh_ack_wait=TTL_SECONDS / 5, agentmesh_max_deliver=5)
    assert ledger_for(create_transport("memory://retention-ok"), fits) is not None
    too_long = _settings(
        tmp_path,
        agentmesh_ack_wait=TTL_SECONDS / 5 + 1,
        agentmesh_max_deliver=5,
        agentmesh_transport="memory://retention-long",
    )
    with pytest.raises(ConfigError, match="outlasts the task ledger's retention"):
        Mesh(settings=too_long)
