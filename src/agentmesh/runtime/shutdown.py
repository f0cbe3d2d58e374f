"""A process told to stop exits, whatever a component left behind.

Client libraries own threads: an unclosed aiosqlite connection, a Pulsar or Pub/Sub
client, a boto session. A non-daemon thread left running makes the interpreter wait
for it forever at exit, and a component whose ``close()`` hangs keeps the event loop
from finishing. Both turn SIGTERM into a process that never ends, which an orchestrator
then has to SIGKILL. Two guards prevent that:

- :func:`stop_on_signals` sets an event on SIGINT/SIGTERM for the graceful path and arms
  a deadline (:data:`EXIT_DEADLINE_SECONDS`) after which the process logs what is still
  running and exits anyway; a second signal exits at once;
- :func:`exit_process` ends a process whose work is done, reporting and skipping any
  non-daemon thread that would otherwise hold it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from typing import NoReturn

from loguru import logger

EXIT_DEADLINE_SECONDS = 8.0
"""Time a process has between the stop signal and its forced exit (under 10 s, the grace
period orchestrators commonly give before SIGKILL)."""

_armed = threading.Event()


def lingering_threads() -> list[threading.Thread]:
    """Live non-daemon threads other than the main thread: what would block exit."""
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and t.is_alive() and not t.daemon]


def _left_behind() -> str:
    threads = ", ".join(t.name for t in lingering_threads()) or "none"
    try:
        tasks = ", ".join(sorted(t.get_name() for t in asyncio.all_tasks()))
    except RuntimeError:  # no running loop in this thread
        tasks = ""
    return f"threads: {threads}" + (f"; tasks: {tasks}" if tasks else "")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken pipe
            stream.flush()


def _force_exit(code: int, why: str) -> NoReturn:
    logger.error("{}; exiting now. Left behind: {}", why, _left_behind())
    _flush()
    os._exit(code)


def arm_exit_deadline(seconds: float = EXIT_DEADLINE_SECONDS, code: int = 1) -> None:
    """Exit the process with ``code`` in ``seconds`` unless it has exited by then.

    Called once a stop was requested; arming it again does nothing.
    """
    if _armed.is_set():
        return
    _armed.set()
    timer = threading.Timer(
        seconds, _force_exit, args=(code, f"shutdown did not finish within {seconds:g}s")
    )
    timer.daemon = True
    timer.name = "agentmesh-exit-deadline"
    timer.start()


def stop_on_signals(
    loop: asyncio.AbstractEventLoop, *, deadline: float = EXIT_DEADLINE_SECONDS
) -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, which also arm the exit deadline.

    A second signal while stopping exits at once (status 130).
    """
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            _force_exit(130, f"second {sig.name} while stopping")
        logger.info("{} received, stopping (at most {:g}s)", sig.name, deadline)
        stop.set()
        arm_exit_deadline(deadline)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    return stop


EXIT_GRACE_SECONDS = 2.0
"""How long a finished process waits for threads that are ending on their own (a closed
aiosqlite connection's worker thread stops a moment after ``close()`` returns)."""


def exit_process(code: int) -> NoReturn:
    """Exit with ``code``; a non-daemon thread still running after a short grace is
    reported, not waited for."""
    deadline = time.monotonic() + EXIT_GRACE_SECONDS
    for thread in lingering_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    threads = lingering_threads()
    if threads:
        logger.warning(
            "exiting with {} thread(s) still running: {} (a client was not closed)",
            len(threads),
            ", ".join(t.name for t in threads),
        )
        _flush()
        os._exit(code)
    raise SystemExit(code)
