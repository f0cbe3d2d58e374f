"""One task = one trace across processes: `agentmesh up` and an agent process export spans
over OTLP/HTTP to a receiver this test runs; the spans of a task submitted through REST
share one trace id and chain REST -> outbox relay -> broker -> agent handler -> outcome ->
tracker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.helpers import cli_token, wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")
AGENT_CMD = [AGENTMESH, "agent", "start", "tracer-1", "--capabilities", "shout", "--tenant", "demo"]


class Receiver:
    """A minimal OTLP/HTTP trace receiver: decodes each protobuf export into span dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = self.path == "/v1/traces"
                if ok:
                    receiver.add(body)
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, body: bytes) -> None:
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        for rs in req.resource_spans:
            service = next(
                a.value.string_value for a in rs.resource.attributes if a.key == "service.name"
            )
            for ss in rs.scope_spans:
                for s in ss.spans:
                    with self.lock:
                        self.spans.append(
                            {
                                "name": s.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent": s.parent_span_id.hex(),
                                "service": service,
                                "kind": s.kind,
                            }
                        )

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_a_rest_task_is_one_trace_across_the_control_plane_and_an_agent_process(
    tmp_path: Path, receiver: Receiver
) -> None:
    from agentmesh.runtime.embedded import free_port

    env = dict(
        os.environ,
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.5",
        LOG_LEVEL="INFO",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    env.pop("NATS_URL", None)
    env.pop("OTEL_SERVICE_NAME", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / "up.log", tmp_path / "agent.log"]
    client: httpx.Client | None = None
    try:
        with logs[0].open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [AGENTMESH, "up", "--demo", "--port", str(port)],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_until(
            lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, 30, "the API up"
        )
        token = cli_token(env, "demo")
        with logs[1].open("wb") as log:
            procs.append(
                subprocess.Popen(
                    AGENT_CMD,
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})

        def listed() -> bool:
            agents = client.get("/v1/tenants/demo/agents", params={"limit": 100}).json()["agents"]
            return "tracer-1" in {a["agent_id"] for a in agents}

        wait_until(listed, 30, "the agent process registered")
        created = client.post(
            "/v1/tenants/demo/tasks", json={"capability": "shout", "payload": {"text": "hi"}}
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["task_id"]
        wait_until(
            lambda: client.get(f"/v1/tenants/demo/tasks/{task_id}").json()["status"] == "completed",
            30,
            "the task completed",
        )

        def rest_span() -> dict[str, Any] | None:
            with receiver.lock:
                spans = [
                    s for s in receiver.spans if s["name"] == "POST /v1/tenants/{tenant_id}/tasks"
                ]
            return spans[-1] if spans else None

        rest = wait_until(rest_span, 15, "the REST span exported")
        wanted = {"outbox.relay", "task.receive", "task.handler", "task.outcome", "tracker.apply"}

        def whole_trace() -> list[dict[str, Any]] | None:
            spans = receiver.trace(rest["trace_id"])
            return spans if wanted <= {s["name"] for s in spans} else None

        spans = wait_until(whole_trace, 15, "every hop of the task exported in one trace")
    finally:
        if client is not None:
            client.close()
        for proc in reversed(procs):
            proc.send_signal(signal.SIGINT)
        codes = [proc.wait(30) for proc in procs]
    assert codes == [0] * len(procs), "".join(p.read_text()[-2000:] for p in logs)

    by_name = {s["name"]: s for s in spans}
    by_id = {s["span_id"]: s for s in spans}

    def parent_of(name: str) -> str:
        return str(by_id[by_name[name]["parent"]]["name"])

    # the chain, hop by hop, across the two processes
    assert parent_of("outbox.relay") == rest["name"]
    assert parent_of("task.receive") == "outbox.relay"  # over the broker
    assert parent_of("task.handler") == "task.receive"
    assert parent_of("task.outcome") == "task.receive"
    assert parent_of("tracker.apply") == "task.outcome"  # back over the broker
    assert rest["parent"] == ""  # the trace starts at REST
    services = {s["name"]: s["service"] for s in spans}
    assert services["task.handler"] != services["outbox.relay"]  # two processes
    assert services["outbox.relay"] == services["tracker.apply"] == rest["service"]
    # this task's spans and no other task's: one task = one trace
    assert sum(1 for s in spans if s["name"] == "task.handler") == 1
