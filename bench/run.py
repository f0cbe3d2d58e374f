"""``make bench``: every benchmark module, one table, ``bench/results/latest.json``.

Each module's ``run()`` returns ``{name: {value, unit, baseline, ratio}}`` where
``ratio`` = ours / raw baseline measured in the same run (higher is better).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from loguru import logger

MODULES = [
    "bench.core",
    "bench.store",
    "bench.brokers",
    "bench.routing",
    "bench.engine",
    "bench.patterns",
    "bench.api",
    "bench.llm",
    "bench.decentralized",
    "bench.federated",
    "bench.tracing",
    "bench.safety",
    "bench.scale",
    "bench.bus_auth",
    "bench.cluster",
]
RESULTS = Path(__file__).parent / "results"


async def _run_module(name: str) -> dict[str, Any]:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return {}
        raise
    result = module.run()
    if inspect.isawaitable(result):
        result = await result
    return dict(result)


def main(argv: list[str]) -> int:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    wanted = [m for m in MODULES if not argv or any(a in m for a in argv)]
    results: dict[str, Any] = {}
    failures = []
    for name in wanted:
        started = time.perf_counter()
        try:
            part = asyncio.run(_run_module(name))
        except Exception as exc:  # noqa: BLE001 - one failed benchmark is reported, the rest run
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        if part:
            print(
                f"# {name}: {len(part)} figures in {time.perf_counter() - started:.1f}s",
                file=sys.stderr,
            )
        results.update(part)
    width = max((len(k) for k in results), default=10)
    print(f"{'benchmark':<{width}}  {'ours':>14}  {'raw baseline':>14}  {'ratio':>6}  unit")
    for key, r in results.items():
        base = "-" if r.get("baseline") is None else f"{r['baseline']:,.1f}"
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.2f}"
        print(f"{key:<{width}}  {r['value']:>14,.1f}  {base:>14}  {ratio:>6}  {r['unit']}")
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "_meta": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "at": time.time(),
        }
    }
    (RESULTS / "latest.json").write_text(json.dumps({**results, **meta}, indent=2))
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
