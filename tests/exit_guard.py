"""pytest plugin: a test session always ends, with pytest's own status.

- A non-daemon thread left running at the end (an unclosed aiosqlite connection, a
  broker client) is reported by name and the process exits at once with the session's
  status, instead of waiting for the thread in ``threading._shutdown`` forever.
- The whole session has a deadline (``AGENTMESH_TEST_DEADLINE`` seconds, default 1800;
  0 turns it off): when it passes, the stacks of every thread are printed and the run
  fails with status 1. SIGTERM (from ``timeout`` in ``.ci/run``) prints them too.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading

import pytest

_STDERR_KEY = pytest.StashKey[int]()
_STATUS_KEY = pytest.StashKey[int]()


def _deadline() -> float:
    try:
        return float(os.environ.get("AGENTMESH_TEST_DEADLINE", "1800"))
    except ValueError:
        return 1800.0


def pytest_configure(config: pytest.Config) -> None:
    # capture is suspended while plugins configure: fd 2 is the real stderr here
    fd = os.dup(2)
    config.stash[_STDERR_KEY] = fd
    deadline = _deadline()
    if deadline > 0:
        faulthandler.dump_traceback_later(deadline, exit=True, file=fd)
    with contextlib.suppress(ValueError, RuntimeError):  # not the main thread
        faulthandler.register(signal.SIGTERM, file=fd, all_threads=True, chain=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_STATUS_KEY] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    faulthandler.cancel_dump_traceback_later()
    with contextlib.suppress(ValueError, RuntimeError):
        faulthandler.unregister(signal.SIGTERM)
    fd = config.stash.get(_STDERR_KEY, None)
    main = threading.main_thread()
    left = [t for t in threading.enumerate() if t is not main and t.is_alive() and not t.daemon]
    if left:
        status = config.stash.get(_STATUS_KEY, 1)
        names = ", ".join(f"{t.name} ({type(t).__module__}.{type(t).__qualname__})" for t in left)
        message = (
            f"\nexit_guard: {len(left)} non-daemon thread(s) still running at the end of the "
            f"session: {names}; exiting with status {status} instead of waiting for them\n"
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(fd if fd is not None else 2, message.encode())
        os._exit(status)
    if fd is not None:
        os.close(fd)
