"""Row 10: the replay corpus. Recorded histories under ``tests/golden/histories/`` (the
demo, a chaos walk and the five coordination patterns, see
:mod:`tests.chaos.pattern_histories`) are replayed into an empty store and projected from
zero: the read models must equal the recorded ones (0 divergence); a fresh seeded run is
recorded and replayed the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.conftest import Report, size
from tests.chaos.histories import GOLDEN, diff, record, replay
from tests.chaos.pattern_histories import PATTERNS

ROW = "10 replay corpus"
HISTORIES = sorted(GOLDEN.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_without_divergence(
    path: Path, tmp_path: Path, report: Report
) -> None:
    history = load(path)
    got = await replay(history["events"], f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}")
    diverged = diff(history["read_models"], got)
    report(
        ROW,
        f"golden {path.stem}: {len(history['events'])} events replayed, 0 divergence",
        f"{len(diverged)} diverging read models {diverged[:3]}",
        not diverged,
    )
    assert diverged == []


async def test_a_fresh_run_replays_without_divergence(tmp_path: Path, report: Report) -> None:
    steps = size(3000, 300)
    live = await record(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}", seed=1019, steps=steps)
    got = await replay(live["events"], f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}")
    diverged = diff(live["read_models"], got)
    report(
        ROW,
        f"fresh seeded run of {steps} commands ({len(live['events'])} events): 0 divergence",
        f"{len(diverged)} diverging read models {diverged[:3]}",
        not diverged,
    )
    assert diverged == []


def test_the_corpus_is_there() -> None:
    """The demo, a chaos run and every pattern, each small and holding events."""
    wanted = {"demo", "chaos-walk", *(p.replace("_", "-") for p in PATTERNS)}
    assert wanted <= {p.stem for p in HISTORIES}, f"missing under {GOLDEN}"
    for path in HISTORIES:
        assert path.stat().st_size < 200_000, path
        assert load(path)["events"], path


async def test_a_missing_event_is_a_divergence(tmp_path: Path) -> None:
    """The comparison can fail: a history without one of its task events diverges."""
    history = load(GOLDEN / "chaos-walk.json")
    events = history["events"]
    cut = max(i for i, e in enumerate(events) if e["event_type"] == "TaskCompleted")
    stream = events[cut]["stream_id"]  # drop it and what followed on its stream
    kept = events[:cut] + [e for e in events[cut + 1 :] if e["stream_id"] != stream]
    got = await replay(kept, f"sqlite+aiosqlite:///{tmp_path / 'cut.db'}")
    assert diff(history["read_models"], got) != []
