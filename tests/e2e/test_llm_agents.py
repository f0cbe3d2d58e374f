"""LLM agents through the real entry points: `agentmesh up`, a tool-agent process,
`agentmesh agent start-llm-agent` against the local model server, a task through REST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.runtime.embedded import free_port
from agentmesh.testing import LocalModelServer, ModelRequest, Reply
from tests.helpers import cli_token, wait_until
from tests.processes import stop_processes

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")
KEY = "sk-e2e-" + "e" * 30


def model(request: ModelRequest) -> Reply:
    """Calls the calculator, then reports what the calculator agent answered."""
    if not request.tool_results:
        if "calculator" not in request.tools:
            return Reply.say(f"no calculator among {sorted(request.tools)}")
        return Reply.call("calculator", {"expression": "6 * 7"})
    return Reply.say(f"The calculator agent answered {request.tool_results[-1][1]['value']}.")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    stop_processes(procs)


def test_llm_agent_process_uses_a_tool_agent_for_a_rest_task(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "NATS_"))}
    env.update(
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.3",
        AGENTMESH_TENANT="acme",
        LOG_LEVEL="WARNING",
    )
    log = tmp_path / "procs.log"
    port = free_port()

    def spawn(*argv: str, **extra: str) -> None:
        with log.open("ab") as out:
            processes.append(
                subprocess.Popen(argv, cwd=ROOT, env={**env, **extra}, stdout=out, stderr=out)
            )

    def logs() -> str:
        return log.read_text()[-3000:]

    spawn(AGENTMESH, "up", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 40, "the API")
    token = cli_token(env, "acme")
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def listed(*ids: str) -> bool:
        agents = client.get("/v1/tenants/acme/agents", params={"limit": 100}).json()["agents"]
        return set(ids) <= {a["agent_id"] for a in agents}

    with LocalModelServer(responder=model, api_key=KEY).running() as server, client:
        spawn(sys.executable, "examples/llm_agents.py", "--part", "tools")
        wait_until(lambda: listed("calculator-1", "lookup-1"), 40, "tool agents: " + logs())
        spawn(
            AGENTMESH, "agent", "start-llm-agent", "researcher-1", "--capabilities", "research",
            "--provider", "openai", "--model", "gpt-4o-mini", "--base-url", server.openai_url,
            "--tools", "calculator", "--system-prompt", "Use the calculator.",
            OPENAI_API_KEY=KEY,
        )  # fmt: skip
        wait_until(lambda: listed("researcher-1"), 40, "the LLM agent: " + logs())
        created = client.post(
            "/v1/tenants/acme/tasks",
            json={"capability": "research", "payload": {"prompt": "What is 6 times 7?"}},
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["task_id"]

        def completed() -> dict[str, Any] | None:
            doc = client.get(f"/v1/tenants/acme/tasks/{task_id}").json()
            assert doc["status"] != "failed", doc
            return doc if doc["status"] == "completed" else None

        doc = wait_until(completed, 40, "the task completed: " + logs())
        result = doc["result"]
        assert doc["agent_id"] == "researcher-1"
        assert result["text"] == "The calculator agent answered 42.0."
        [call] = result["tool_calls"]
        assert (call["name"], call["status"], call["result"]) == (
            "calculator",
            "ok",
            {"value": 42.0},
        )
        assert result["model"] == "gpt-4o-mini"
        assert result["usage"]["total_tokens"] > 0
        first, second = server.requests
        assert set(first.tools) == {"calculator"}
        assert first.system.endswith("Use the calculator.")
        assert second.tool_results == [("calculator", {"value": 42.0})]
        assert KEY not in json.dumps(result)

        def audited() -> list[dict[str, Any]]:
            page = client.get("/v1/tenants/acme/audit", params={"action": "tool_called"})
            return list(page.json()["entries"])

        [entry] = wait_until(audited, 20, "the tool call in the audit trail")
        assert (entry["actor"], entry["resource_id"], entry["status"]) == (
            "researcher-1",
            "calculator",
            "success",
        )
        assert entry["details"]["task_id"] == task_id
        llm_process = processes[-1]
        llm_process.send_signal(signal.SIGINT)
        assert llm_process.wait(30) == 0, logs()  # drained, provider closed, clean exit


def test_missing_credentials_exit_2_before_connecting(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "GCP_PROJECT_ID", "GOOGLE_APPLICATION_CREDENTIALS")
        and not k.startswith(("GEMINI_", "GOOGLE_API"))
    }
    env.update(NATS_URL="nats://127.0.0.1:1", AGENTMESH_DATA_DIR=str(tmp_path))
    cases = [
        (["start-llm-agent", "a-1", "-c", "x", "--provider", "openai"], "OPENAI_API_KEY"),
        (["start-llm-agent", "a-1", "-c", "x", "--provider", "gemini"], "GEMINI_API_KEY"),
        (["start-vertex-agent", "a-1", "-c", "x"], "GCP_PROJECT_ID"),
        (["start-vertex-agent", "a-1", "-c", "x", "--gcp-project-id", "p"],
         "GOOGLE_APPLICATION_CREDENTIALS"),
    ]  # fmt: skip
    for argv, variable in cases:
        proc = subprocess.run(
            [AGENTMESH, "agent", *argv], env=env, capture_output=True, text=True, timeout=60
        )
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1, proc.stderr
        assert variable in lines[0]
        assert "Traceback" not in proc.stderr
        assert "nats" not in proc.stderr.lower()  # it never tried to connect


def test_the_example_runs_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OPENAI_"))}
    env.update(AGENTMESH_DATA_DIR=str(tmp_path), LOG_LEVEL="WARNING")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "llm_agents.py")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text, calls = proc.stdout.strip().splitlines()[-2:]
    assert text == "Light travels 17,987,547,480 m in one minute (299792458 m/s)."
    assert [(c["name"], c["status"]) for c in json.loads(calls)] == [
        ("lookup", "ok"),
        ("calculator", "ok"),
    ]


def launch(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([AGENTMESH, *args], cwd=ROOT, env=env, stdout=out, stderr=out)


async def test_start_vertex_agent_with_a_service_account_file(
    nats_url: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    from agentmesh import Mesh
    from agentmesh.config import Settings
    from tests.helpers import eventually

    tenant = "t" + os.urandom(4).hex()
    async with LocalModelServer(api_key=KEY) as server:
        creds = server.write_service_account(tmp_path / "sa.json", project_id="proj-9")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTMESH_")}
        env.update(
            NATS_URL=nats_url,
            AGENTMESH_DATA_DIR=str(tmp_path),
            AGENTMESH_HEARTBEAT_INTERVAL="0.2",
            GOOGLE_APPLICATION_CREDENTIALS=str(creds),
            LOG_LEVEL="WARNING",
        )
        processes.append(
            launch(
                env, tmp_path / "vertex.log",
                "agent", "start-vertex-agent", "ai-agent-1",
                "--capabilities", "text_generation,analysis", "--gcp-project-id", "proj-9",
                "--model-name", "gemini-1.5-pro", "--location", "europe-west4",
                "--base-url", server.url, "--tenant", tenant,
            )
        )  # fmt: skip
        server.script(Reply.say("Vertex says hello."))
        client = Mesh(nats_url, tenant=tenant, settings=Settings(agentmesh_data_dir=tmp_path))
        async with client:
            await eventually(lambda: bool(client.registry.agents(tenant)), 30)
            out = await client.run("analysis", {"prompt": "hello"}, timeout=30)
        assert out["text"] == "Vertex says hello."
        assert out["provider"] == "vertex"
        [request] = server.requests
        assert request.path == (
            "/v1/projects/proj-9/locations/europe-west4/publishers/google/models/"
            "gemini-1.5-pro:streamGenerateContent"
        )
        assert server.token_requests >= 1  # credentials from the key file, refreshed offline
