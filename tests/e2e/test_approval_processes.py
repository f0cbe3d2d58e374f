"""Approval gates through real processes: ``agentmesh up`` (control plane, SQLite store),
a separate nats-server and an agent process. Tasks held for approval survive a SIGKILL
and restart of each of the three; after approval through the CLI each runs exactly once
(counted by the handler's own side-effect file); a rejected one never runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.runtime.embedded import EmbeddedNats, free_port
from tests.e2e.test_product import AGENTMESH, ROOT
from tests.helpers import cli_token, wait_until

pytestmark = pytest.mark.e2e

CLIENT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from agentmesh import Mesh

    async def main() -> None:
        mesh = Mesh(os.environ["NATS_URL"], tenant=sys.argv[1])
        await mesh.transport.connect()
        task_id = await mesh.submit("payout", {"n": 3}, requires_approval=True)
        await mesh.transport.close()
        print(json.dumps(task_id))

    asyncio.run(main())
    """
)


class Procs:
    """The processes of the test, each started (and killed) by its PID."""

    def __init__(self, tmp: Path, env: dict[str, str], port: int) -> None:
        self.tmp, self.env, self.port = tmp, env, port
        self.plane: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("ab") as log:
            return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_plane(self) -> None:
        self.plane = self._spawn("up", [AGENTMESH, "up", "--port", str(self.port)], self.env)
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200,
            60,
            "the control plane up",
        )

    def start_agent(self, tenant: str) -> None:
        argv = [
            AGENTMESH,
            "agent",
            "start",
            "payer-1",
            "--capabilities",
            "payout",
            "--tenant",
            tenant,
            "--handler",
            "tests.e2e.approval_handler:count",
        ]
        self.agent = self._spawn("agent", argv, self.env)

    @staticmethod
    def kill(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(15)

    def stop(self) -> None:
        for proc in (self.agent, self.plane):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTMESH, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_pending_approvals_survive_sigkill_of_agent_plane_and_nats_then_run_once(
    tmp_path: Path,
) -> None:
    tenant = "apr" + uuid.uuid4().hex[:8]
    nats = EmbeddedNats(tmp_path / "nats", port=free_port())
    nats_url = nats.start()
    side_effects = tmp_path / "side-effects.txt"
    env = dict(
        os.environ,
        NATS_URL=nats_url,
        AGENTMESH_DATA_DIR=str(tmp_path / "plane"),
        AGENTMESH_HEARTBEAT_INTERVAL="0.5",
        SIDE_EFFECTS=str(side_effects),
        LOG_LEVEL="WARNING",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs = Procs(tmp_path, env, port)
    http: httpx.Client | None = None

    def runs() -> dict[str, int]:
        if not side_effects.exists():
            return {}
        out: dict[str, int] = {}
        for line in side_effects.read_text().split():
            out[line] = out.get(line, 0) + 1
        return out

    try:
        procs.start_plane()
        admin = cli_token(env, "_system")
        made = httpx.post(
            f"{base}/v1/tenants",
            json={"tenant_id": tenant, "name": f"Approvals {tenant}"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        submitter = cli_token(env, tenant, "orchestrator")
        approver = cli_token(env, tenant, "approver")
        api = ["--api-url", base, "--json", "--tenant", tenant]
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {approver}"})
        procs.start_agent(tenant)
        wait_until(
            lambda: http.get(f"/v1/tenants/{tenant}/agents/payer-1").status_code == 200,
            30,
            "the agent registered",
        )

        # three gated tasks: CLI, REST and Mesh.submit (a broker-only client)
        sub_env = {**env, "AGENTMESH_TOKEN": submitter}
        out = _cli(
            sub_env,
            "task",
            "submit",
            "-c",
            "payout",
            "--payload",
            '{"n": 1}',
            "--requires-approval",
            *api,
        )
        assert out.returncode == 0, out.stderr
        cli_task = json.loads(out.stdout)
        assert cli_task["status"] == "pending_approval"
        rest = httpx.post(
            f"{base}/v1/tenants/{tenant}/tasks",
            json={"capability": "payout", "payload": {"n": 2}, "requires_approval": True},
            headers={"Authorization": f"Bearer {submitter}"},
            timeout=10,
        )
        assert rest.status_code == 201, rest.text
        assert rest.json()["status"] == "pending_approval"
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, tenant],
            env={k: v for k, v in env.items() if not k.startswith("AGENTMESH_")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.returncode == 0, client.stderr
        mesh_task = json.loads(client.stdout)
        ids = {"cli": cli_task["task_id"], "rest": rest.json()["task_id"], "mesh": mesh_task}

        def pending() -> set[str] | None:
            r = http.get(f"/v1/tenants/{tenant}/approvals", timeout=10)
            found = {a["task_id"] for a in r.json()["items"]} if r.status_code == 200 else set()
            return found if found == set(ids.values()) else None

        wait_until(pending, 30, "three pending approvals")

        # SIGKILL and restart NATS, then the agent, then the control plane
        assert nats.proc is not None
        os.kill(nats.proc.pid, signal.SIGKILL)
        nats.proc.wait(15)
        nats.proc = None
        nats.requested_port = nats.port
        assert nats.start() == nats_url
        procs.kill(procs.agent)
        procs.start_agent(tenant)
        procs.kill(procs.plane)
        procs.start_plane()
        wait_until(pending, 30, "the approvals still pending after the restarts")
        assert runs() == {}, "nothing ran while pending"
        wait_until(
            lambda: http.get(f"/v1/tenants/{tenant}/agents/live").json().get("agents"),
            30,
            "the restarted agent live again",
        )

        # decide through the CLI
        dec_env = {**env, "AGENTMESH_TOKEN": approver}
        show = _cli(dec_env, "approval", "show", f"{ids['cli']}__a1", *api)
        assert show.returncode == 0, show.stderr
        shown = json.loads(show.stdout)
        assert shown["arguments"] == {"n": 1}
        out = _cli(
            dec_env,
            "approval",
            "approve",
            f"{ids['cli']}__a1",
            "--args-sha256",
            shown["args_sha256"],
            "-m",
            "ok",
            *api,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["status"] == "approved"
        out = _cli(dec_env, "approval", "approve", f"{ids['mesh']}__a1", *api)
        assert out.returncode == 0, out.stderr
        out = _cli(dec_env, "approval", "reject", f"{ids['rest']}__a1", "-m", "too much", *api)
        assert out.returncode == 0, out.stderr

        def task(task_id: str) -> dict[str, Any]:
            doc: dict[str, Any] = http.get(f"/v1/tenants/{tenant}/tasks/{task_id}").json()
            return doc

        for key in ("cli", "mesh"):
            wait_until(
                lambda key=key: task(ids[key])["status"] == "completed", 60, f"{key} completed"
            )
        # bad input: approving twice, or approving the rejected one -> 409, nothing runs
        twice = _cli(dec_env, "approval", "approve", f"{ids['cli']}__a1", *api)
        assert twice.returncode != 0
        assert "APPROVAL_DECIDED" in twice.stdout + twice.stderr
        late = _cli(dec_env, "approval", "approve", f"{ids['rest']}__a1", *api)
        assert late.returncode != 0
        assert "Traceback" not in late.stderr
        # the approver may not submit, an orchestrator may not approve
        denied = httpx.post(
            f"{base}/v1/tenants/{tenant}/approvals/{ids['rest']}__a1/approve",
            headers={"Authorization": f"Bearer {submitter}"},
            timeout=10,
        )
        assert denied.status_code == 403
        rejected = task(ids["rest"])
        assert rejected["status"] == "rejected"
        assert "too much" in rejected["error"]
        assert runs() == {ids["cli"]: 1, ids["mesh"]: 1}
        assert task(ids["cli"])["result"]["paid"]["n"] == 1

        def audited() -> list[str] | None:
            r = http.get(
                f"/v1/tenants/{tenant}/audit", params={"resource_type": "task", "limit": 500}
            )
            if r.status_code != 200:
                return None
            actions = [e["action"] for e in r.json()["entries"]]
            return actions if actions.count("approval_decided") >= 3 else None

        admin_t = cli_token(env, tenant, "admin")
        http.headers["Authorization"] = f"Bearer {admin_t}"
        actions = wait_until(audited, 30, "the decisions in the audit trail")
        assert actions.count("approval_requested") == 3
    finally:
        if http is not None:
            http.close()
        procs.stop()
        nats.stop()
