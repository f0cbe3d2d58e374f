"""``make chaos``: the fault and abuse battery at full size, printed as one table.

Runs ``tests/chaos`` with ``CHAOS_SCALE=full`` (the test suite runs the same tests at
reduced sizes), collects the rows the scenarios report (scenario, target, measured,
pass) and prints them, followed by the scenarios of the battery that have no test yet,
marked ``not built``. Exits non-zero when a row fails, pytest fails or a row is missing.

    python -m bench.chaos              # everything
    python -m bench.chaos -k jwt       # extra arguments go to pytest
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SCENARIOS = {
    "1": "kill -9 worker (>= 100 in flight, NATS/Redis/RabbitMQ)",
    "2": "broker kill -9 under a live publisher",
    "3": "dedupe 1,000 x 3 publishes, ledger retention",
    "4": "poison message: stall < 1 s, DLQ on every broker",
    "5": "stale ack after redelivery",
    "6": "partition through a TCP proxy for 30 s",
    "7": "clock skew: JWT leeway at the boundary",
    "8": "event store 10 writers x 100 x 100 + 2 live readers",
    "9": "outbox killed at N points",
    "10": "replay corpus, 0 divergence",
    "11": "BOLA: 404 never 403, audited",
    "12": "JWT abuse",
    "13": "mass assignment -> 422, no state change",
    "14": "limits at their real defaults",
    "15": "WS sessions closed after expiry/revocation",
    "16": "schemathesis >= 100 examples per operation and role",
}
ROOT = Path(__file__).resolve().parent.parent


def run(pytest_args: list[str]) -> tuple[int, list[dict[str, object]]]:
    """Run the battery; pytest's exit code and the rows the scenarios reported."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rows.jsonl"
        env = {**os.environ, "CHAOS_SCALE": "full", "CHAOS_REPORT": str(report)}
        cmd = [sys.executable, "-m", "pytest", "tests/chaos", "-q", "-p", "no:cacheprovider"]
        code = subprocess.run([*cmd, *pytest_args], cwd=ROOT, env=env, check=False).returncode
        rows = (
            [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
            if report.exists()
            else []
        )
    return code, rows


def table(rows: list[dict[str, object]]) -> str:
    """The rows as a plain-text table (one line per claim), then the scenarios not built."""
    lines = [("scenario", "target", "measured", "pass")]
    lines += [
        (str(r["scenario"]), str(r["target"]), str(r["measured"]), "yes" if r["pass"] else "NO")
        for r in rows
    ]
    covered = {str(r["scenario"]).split()[0] for r in rows}
    lines += [
        (f"{n} {title}", "-", "not built", "NO")
        for n, title in SCENARIOS.items()
        if n not in covered
    ]
    widths = [min(60, max(len(line[i]) for line in lines)) for i in range(4)]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(cell[:60].ljust(w) for cell, w in zip(line, widths, strict=True)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    code, rows = run(argv)
    print(table(rows))
    failed = [r for r in rows if not r["pass"]]
    covered = {str(r["scenario"]).split()[0] for r in rows}
    missing = [n for n in SCENARIOS if n not in covered]
    print(
        f"\n{len(rows)} rows, {len(failed)} failed, {len(missing)} scenarios not built; "
        f"pytest exit {code}"
    )
    return 1 if code or failed or (missing and not argv) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
