"""Docstrings, comments and help texts state rules themselves: the seed specification they
were once cited from ("spec 3.4", "spec §3") is not part of the repository."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "agentmesh"
SUFFIXES = {".py", ".js", ".html", ".css", ".toml", ".yaml"}
SPEC_REFERENCE = re.compile(r"\bspec(?:'s)?\s*(?:\(\s*)?(?:§\s*)?3\.\d+|\bspec\s*§", re.IGNORECASE)


def spec_references(text: str) -> list[int]:
    """Line numbers (1-based) of ``text`` that cite a section of the seed specification."""
    return [n for n, line in enumerate(text.splitlines(), 1) if SPEC_REFERENCE.search(line)]


def test_the_matcher_finds_every_citation_form() -> None:
    cited = [
        "the weights of spec 3.4",
        "(spec 3.12: aligned >= 0.7)",
        "Spec 3.13 fixes the defaults",
        "see spec §3",
        "Roles are the spec's (3.8): admin",
    ]
    assert spec_references("\n".join(cited)) == [1, 2, 3, 4, 5]
    assert spec_references("spec.get('description')\nX, y = shard_of(spec)\nv3.1") == []


def test_src_cites_no_spec_section() -> None:
    found = [
        f"{path.relative_to(SRC)}:{line}"
        for path in sorted(SRC.rglob("*"))
        if path.suffix in SUFFIXES
        for line in spec_references(path.read_text(encoding="utf-8"))
    ]
    assert any(SRC.rglob("*.py"))
    assert found == [], "state the rule instead of citing the spec: " + ", ".join(found)
