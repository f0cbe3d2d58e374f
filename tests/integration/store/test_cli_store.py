"""``agentmesh tenant / message / projections`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentmesh.commands import SubmitTask, build_bus
from agentmesh.envelope import Envelope
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.persistence import open_persistence

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[3]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentmesh.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_tenant_message_and_projection_commands(tmp_path: Path) -> None:
    key = EncryptionService.generate_key()
    db_url = f"sqlite:///{tmp_path / 'am.db'}"
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        ENCRYPTION_KEY=key,
        JWT_SECRET_KEY="x" * 32,
        AGENTMESH_DATA_DIR=str(tmp_path / "data"),
        LOG_LEVEL="WARNING",
    )
    empty = cli(env, "tenant", "list")
    assert (empty.returncode, empty.stdout.strip()) == (0, "No tenants found.")
    made = cli(env, "tenant", "create", "acme")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "Tenant 'acme' created successfully."
    dup = cli(env, "tenant", "create", "acme")
    assert dup.returncode != 0
    assert dup.stderr.strip() == "error: Tenant with name 'acme' already exists."
    assert "Traceback" not in dup.stderr
    assert cli(env, "tenant", "create", "globex").returncode == 0
    listed = cli(env, "tenant", "list")
    assert listed.stdout.split() == ["acme", "globex"]
    as_json = json.loads(cli(env, "tenant", "list", "--json").stdout)
    assert [t["name"] for t in as_json] == ["acme", "globex"]

    # a task offer recorded by the application, encrypted with ENCRYPTION_KEY
    p = await open_persistence(db_url)
    try:
        bus = build_bus(p.store, p.read_models, EncryptionService(key))
        await bus.execute(SubmitTask("acme", "summarize", {"text": "top secret"}))
        pending = await p.store.outbox_pending(10)
        offer = next(Envelope.decode(r.envelope) for r in pending if ".task." in r.subject)
    finally:
        await p.close()
    raw = (tmp_path / "am.db").read_bytes()
    assert b"top secret" in raw  # the outbox holds the envelope until the relay sends it
    shown = cli(env, "message", "view", offer.id, "--json")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["id"] == offer.id
    assert body["tenant_id"] == "acme"
    assert body["payload"]["payload"]["text"] == "top secret"
    text = cli(env, "message", "view", offer.id)
    assert f"ID: {offer.id}" in text.stdout
    assert "Tenant ID: acme" in text.stdout
    missing = cli(env, "message", "view", "nope")
    assert missing.returncode == 1
    assert "Message with ID: nope not found." in missing.stdout
    wrong_key = cli(
        dict(env, ENCRYPTION_KEY=EncryptionService.generate_key()), "message", "view", offer.id
    )
    assert wrong_key.returncode != 0
    assert "Failed to decrypt data" in wrong_key.stderr
    assert "Traceback" not in wrong_key.stderr

    rebuilt = json.loads(cli(env, "projections", "rebuild", "--json").stdout)
    assert rebuilt["events"] >= 6
    status = json.loads(cli(env, "projections", "status", "--json").stdout)
    assert {s["name"] for s in status} == {"agents", "tasks", "tenants", "messages"}
    assert all(s["lag"] == 0 for s in status)
