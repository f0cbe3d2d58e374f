"""``agentmesh up --cluster N``: the scale-out topology on one machine.

A :class:`~agentmesh.runtime.nats_cluster.NatsCluster` of N nodes (JetStream streams and
key-value buckets R3), the machine's PostgreSQL (``DATABASE_URL``, default
:data:`DEFAULT_DATABASE_URL`), ``--replicas`` control planes (``agentmesh up`` processes
sharing store and cluster) on consecutive ports from ``--port``, and ``--agents`` agent
processes whose server lists start at different nodes. Every process gets the same
secrets, so a token minted for one replica works on all. Ctrl-C stops everything.

:class:`LocalCluster` is the same topology as an object (tests and ``make bench``)::

    cluster = LocalCluster(ClusterSpec(replicas=2, agents=3), root, settings)
    cluster.start()
    cluster.api_urls          # ["http://127.0.0.1:8000", "http://127.0.0.1:8001"]
    cluster.kill_plane(1); cluster.nats.kill(2)
    cluster.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from agentmesh.config import Settings
from agentmesh.errors import BrokerUnavailable
from agentmesh.runtime.embedded import _die_with_parent, port_free
from agentmesh.runtime.nats_cluster import NatsCluster

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
"""The machine's PostgreSQL, used when ``DATABASE_URL`` is not set."""


@dataclass
class ClusterSpec:
    """The shape of a local cluster."""

    size: int = 3
    replicas: int = 2
    agents: int = 3
    port: int = 8000
    capabilities: str = "echo"
    tenant: str | None = None
    handler: str | None = None
    demo: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health/ready", timeout=2.0) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _consecutive(base: int, count: int) -> int:
    """The first of ``count`` consecutive free ports at or after ``base``."""
    port = base
    while not all(port_free(port + i) for i in range(count)):
        port += count
    return port


class LocalCluster:
    """NATS cluster + control-plane replicas + agents as child processes (module doc)."""

    def __init__(self, spec: ClusterSpec, root: Path, settings: Settings) -> None:
        self.spec = spec
        self.root = Path(root)
        secured = settings.with_secrets()
        self.database_url = settings.database_url or DEFAULT_DATABASE_URL
        self.nats = NatsCluster(self.root / "nats", size=spec.size)
        first = _consecutive(spec.port, spec.replicas)
        self.api_ports = [first + i for i in range(spec.replicas)]
        exe = str(Path(sys.executable).parent / "agentmesh")
        self.base_env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "JWT_SECRET_KEY": str(secured.jwt_secret_key),
            "ENCRYPTION_KEY": str(secured.encryption_key),
            "ENVIRONMENT": settings.environment,
            **spec.extra_env,
        }
        self.base_env.pop("AGENTMESH_TRANSPORT", None)
        self.planes = [
            _Proc(
                f"plane-{i + 1}",
                [exe, "up", "--host", "127.0.0.1", "--port", str(port)]
                + (["--demo"] if spec.demo and i == 0 else []),
                {**self.base_env, "AGENTMESH_DATA_DIR": str(self.root / f"plane-{i + 1}")},
                self.root / f"plane-{i + 1}.log",
            )
            for i, port in enumerate(self.api_ports)
        ]
        tenant = spec.tenant or settings.agentmesh_tenant
        self.agents = [
            _Proc(
                f"agent-{i + 1}",
                [exe, "agent", "start", f"cluster-agent-{i + 1}", "--capabilities"]
                + [spec.capabilities, "--tenant", tenant]
                + (["--handler", spec.handler] if spec.handler else []),
                {**self.base_env, "AGENTMESH_DATA_DIR": str(self.root / "agents")},
                self.root / f"agent-{i + 1}.log",
            )
            for i in range(spec.agents)
        ]

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.api_ports]

    def nats_url(self, first: int = 0) -> str:
        """The cluster's URLs starting at node ``first`` (spreads clients over nodes)."""
        urls = [n.url for n in self.nats.nodes]
        return ",".join(urls[first:] + urls[:first])

    def start(self, timeout: float = 90.0) -> None:
        """Start NATS, then the first plane (it migrates the store), the other planes,
        then the agents; returns once every plane answers ``/health/ready``."""
        self.nats.start()
        for i, plane in enumerate(self.planes):
            plane.env["NATS_URL"] = self.nats_url(i % self.spec.size)
        for i, agent in enumerate(self.agents):
            agent.env["NATS_URL"] = self.nats_url(i % self.spec.size)
        self.planes[0].spawn()
        self._wait_ready([0], timeout)
        for plane in self.planes[1:]:
            plane.spawn()
        self._wait_ready(list(range(1, len(self.planes))), timeout)
        for agent in self.agents:
            agent.spawn()

    def _wait_ready(self, indexes: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for i in indexes:
            plane = self.planes[i]
            while not _ready(self.api_urls[i]):
                if not plane.alive:
                    raise BrokerUnavailable(f"{plane.name} exited (log: {plane.log})")
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(f"{plane.name} not ready within {timeout:g}s")
                time.sleep(0.1)

    def kill_plane(self, index: int) -> None:
        """SIGKILL control-plane replica ``index`` (0-based)."""
        proc = self.planes[index].proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def status_line(self) -> str:
        nodes = " ".join(f"{n.name}={'up' if n.alive else 'down'}" for n in self.nats.nodes)
        planes = " ".join(
            f"{p.name}={'up' if p.alive else 'down'}" for p in self.planes + self.agents
        )
        return f"[agentmesh cluster] nats {nodes}; {planes}"

    def stop(self) -> None:
        """Stop agents, planes, then NATS (SIGTERM, SIGKILL after 15 s)."""
        for group in (self.agents, self.planes):
            for p in group:
                if p.alive and p.proc is not None:
                    p.proc.send_signal(signal.SIGTERM)
            for p in group:
                if p.proc is None:
                    continue
                try:
                    p.proc.wait(15)
                except subprocess.TimeoutExpired:
                    p.proc.kill()
                    p.proc.wait(5)
        self.nats.stop()


def run_cluster(settings: Settings, spec: ClusterSpec, print_line: object = print) -> None:
    """Run a :class:`LocalCluster` under ``<data dir>/cluster`` until SIGINT/SIGTERM."""
    out = print_line if callable(print_line) else print
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cluster = LocalCluster(spec, settings.data_dir / "cluster", settings)
    try:
        cluster.start()
        out(f"NATS cluster (JetStream R3): {cluster.nats.url}")
        out(f"PostgreSQL: {cluster.database_url.split('@')[-1]}")
        for url in cluster.api_urls:
            out(f"control plane: {url}")
        out(f"logs: {cluster.root}; Ctrl-C stops everything")
        while not stop.wait(5.0):
            out(cluster.status_line())
    finally:
        cluster.stop()
