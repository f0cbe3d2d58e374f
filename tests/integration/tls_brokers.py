"""Throwaway TLS listeners for the broker TLS tests: a second redis-server with a
``tls-port`` and a second RabbitMQ node with an ``amqps`` listener, both on free loopback
ports, with a certificate from a CA the test makes; stopped by PID (and ``rabbitmqctl stop``
/ ``epmd -kill`` for the node and the epmd it started on its own port)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

START_DEADLINE = 90.0  # a RabbitMQ node boots in ~5 s on an idle machine; this one is shared


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"port {port} not open within {START_DEADLINE:g}s: {log.read_text()[-2000:]}"
    )


def need(binary: str) -> str:
    """The path of ``binary``; a missing one fails the test (never a skip)."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed")
    return path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: only what it started
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@contextmanager
def tls_redis(directory: Path, cert: Path, key: Path, ca: Path) -> Iterator[int]:
    """A redis-server with only a TLS port (clients are not asked for a certificate)."""
    with own_redis(
        directory,
        *("--tls-auth-clients", "no", "--tls-cert-file", str(cert), "--tls-key-file", str(key)),
        *("--tls-ca-cert-file", str(ca)),
        tls=True,
    ) as port:
        yield port


@contextmanager
def own_redis(directory: Path, *extra: str, tls: bool = False) -> Iterator[int]:
    """A redis-server of this test on a free loopback port (``extra``: more options)."""
    port, log = free_port(), directory / "redis.log"
    ports = ("--port", "0", "--tls-port", str(port)) if tls else ("--port", str(port))
    args = [
        *ports,
        *("--bind", "127.0.0.1", "--dir", str(directory), "--save", "", "--appendonly", "no"),
        *extra,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [need("redis-server"), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_port(port, proc, log)
        yield port
    finally:
        _stop(proc)


@contextmanager
def tls_rabbitmq(cert: Path, key: Path, ca: Path) -> Iterator[int]:
    """A second RabbitMQ node (its own name, ports, epmd and data) listening on ``amqps``
    only, next to the machine's broker; the node runs as user ``rabbitmq``."""
    server, ctl = need("rabbitmq-server"), need("rabbitmqctl")
    base = Path(tempfile.mkdtemp(prefix="am-rabbit-tls-"))
    port = free_port()
    for pem in (cert, key, ca):
        shutil.copy(pem, base / pem.name)
    (base / "rabbitmq.conf").write_text(
        "listeners.tcp = none\n"
        f"listeners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {base / ca.name}\n"
        f"ssl_options.certfile = {base / cert.name}\n"
        f"ssl_options.keyfile = {base / key.name}\n"
        "ssl_options.verify = verify_none\n"
        "ssl_options.fail_if_no_peer_cert = false\n"
    )
    (base / "enabled_plugins").write_text("[].\n")
    node = f"am_tls_{port}@localhost"
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(free_port()),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_SERVER_START_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "HOME": str(base),
    }
    # the start script switches to user rabbitmq: its files must be that user's
    subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(base)], check=True)
    log = base / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [server],
            env=env,
            cwd=base,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_port(port, proc, log)
        yield port
    finally:
        with suppress(subprocess.TimeoutExpired):
            subprocess.run([ctl, "-n", node, "stop"], env=env, capture_output=True, timeout=60)
        _stop(proc)
        _stop_epmd(env)
        shutil.rmtree(base, ignore_errors=True)


def _stop_epmd(env: dict[str, str]) -> None:
    """End the epmd the node started on its own port: ``epmd -kill`` (refused while a node
    is still registered, so retried), else the epmd process with that port in its
    environment, by PID."""
    epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with suppress(OSError, subprocess.TimeoutExpired):
            done = subprocess.run([epmd, "-kill"], env=env, capture_output=True, timeout=5)
            if b"living nodes" not in done.stdout + done.stderr:
                return  # killed, or no epmd answers on that port any more
        time.sleep(0.5)
    mark = f"ERL_EPMD_PORT={env['ERL_EPMD_PORT']}".encode()
    for proc in Path("/proc").iterdir():
        with suppress(OSError, ValueError):
            if (
                proc.name.isdigit()
                and (proc / "comm").read_text().strip() == "epmd"
                and mark in (proc / "environ").read_bytes().split(b"\0")
            ):
                os.kill(int(proc.name), signal.SIGKILL)
