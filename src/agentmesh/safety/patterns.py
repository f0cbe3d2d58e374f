"""Linear-time regular expressions (RE2) for policy patterns and detectors.

Policy regexes come from operators and are matched against untrusted payloads, so they
run on RE2 (``google-re2``): matching is linear in the input, whatever the pattern, and
a pattern RE2 cannot run in linear time (backreferences, lookaround) is refused when
the policy is loaded instead of stalling a checker later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]

from agentmesh.errors import ValidationError

MAX_PATTERN_MEMORY = 8 << 20  # bytes of compiled program per pattern


class Pattern(Protocol):
    """The part of a compiled RE2 pattern the checker uses."""

    def search(self, text: str) -> Any: ...

    def finditer(self, text: str) -> Any: ...


def _options() -> Any:
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = MAX_PATTERN_MEMORY
    return opts


def compile_pattern(pattern: str) -> Pattern:
    """Compile one pattern with RE2; :class:`ValidationError` says why it cannot run."""
    try:
        compiled: Pattern = re2.compile(pattern, _options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValidationError(f"invalid regex {pattern!r}: {detail}") from None
    return compiled


def compile_any(patterns: Sequence[str]) -> Pattern | None:
    """One pattern matching any of ``patterns`` (each compiled alone first, so an error
    names the culprit); None when there are none."""
    if not patterns:
        return None
    for p in patterns:
        compile_pattern(p)
    return compile_pattern("|".join(f"(?:{p})" for p in patterns))


def literal_words(words: Sequence[str]) -> Pattern | None:
    """Case-insensitive whole-word match of any of ``words`` (taken literally)."""
    if not words:
        return None
    return compile_pattern(r"(?i)\b(?:" + "|".join(re2.escape(w) for w in words) + r")\b")
