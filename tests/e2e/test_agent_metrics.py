"""`agentmesh agent start` serves /metrics on PROMETHEUS_PORT (0: a free port, printed);
a task handled by the process shows up in its own metrics, read through the Prometheus
text parser."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentmesh import Mesh
from tests.helpers import fast_settings, registry_knows, wait_until

pytestmark = pytest.mark.e2e
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def start(
    tmp_path: Path, nats_url: str, agent_id: str, cap: str, tenant: str, **extra: str
) -> tuple[subprocess.Popen[bytes], Path]:
    env = dict(
        os.environ,
        NATS_URL=nats_url,
        AGENTMESH_DATA_DIR=str(tmp_path),
        AGENTMESH_HEARTBEAT_INTERVAL="0.2",
        LOG_LEVEL="WARNING",
        **extra,
    )
    log = tmp_path / f"{agent_id}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [AGENTMESH, "agent", "start", agent_id, "-c", cap, "--tenant", tenant],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


async def test_an_agent_process_serves_its_metrics_on_a_free_port(
    tmp_path: Path, nats_url: str
) -> None:
    tenant = "m" + uuid.uuid4().hex[:8]
    proc, log = start(tmp_path, nats_url, "metered-1", "shout", tenant, PROMETHEUS_PORT="0")
    off, off_log = start(
        tmp_path,
        nats_url,
        "unmetered-1",
        "whisper",
        tenant,
        PROMETHEUS_PORT="0",
        PROMETHEUS_ENABLED="false",
    )
    client = Mesh(nats_url, tenant=tenant, settings=fast_settings(tmp_path))
    try:
        found = wait_until(
            lambda: re.search(r"Metrics: (http://\S+/metrics)", log.read_text()),
            30,
            "the metrics line",
        )
        url = found.group(1)
        async with httpx.AsyncClient() as http:
            first = (await http.get(url, timeout=5)).text
        beats = value(first, "agentmesh_health_check_duration_seconds_count", agent_id="metered-1")
        await client.start()
        task_ids = [await client.submit("shout", {"text": f"t{i}"}) for i in range(4)]
        for task_id in task_ids:
            await client.wait_result(task_id, timeout=30)

        def scraped() -> str | None:
            text = httpx.get(url, timeout=5).text
            return text if value(text, "messages_received_total", platform="nats") > 0 else None

        text = wait_until(scraped, 10, "received messages in the agent's metrics")
        # the offers it took were received by this process over NATS (task subjects)
        assert value(text, "messages_received_total", platform="nats", topic="task") >= 1

        # heartbeats are the agent's health check: timed, and more of them as time goes on
        def more_beats() -> str | None:
            now = httpx.get(url, timeout=5).text
            count = value(
                now, "agentmesh_health_check_duration_seconds_count", agent_id="metered-1"
            )
            return now if count > beats else None

        text = wait_until(more_beats, 30, "another timed heartbeat")
        assert value(text, "agentmesh_health_check_duration_seconds_sum", agent_id="metered-1") > 0
        await registry_knows(client, "unmetered-1", timeout=30)  # up, and then no metrics
        assert "Metrics:" not in off_log.read_text()  # PROMETHEUS_ENABLED=false: none served
    finally:
        await client.stop()
        for p in (proc, off):
            p.send_signal(signal.SIGINT)
        codes = [p.wait(30) for p in (proc, off)]
    assert codes == [0, 0], log.read_text()[-2000:] + off_log.read_text()[-2000:]
