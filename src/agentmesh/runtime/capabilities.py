"""How an agent names itself and what it can do: the agent id rule and the capability
list parser every entry point uses (``{"summarize": 4}``, ``["a", "b"]``, ``"a,b"``,
``"a b"``, ``"a:5"``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from agentmesh import ids
from agentmesh.errors import ValidationError

AGENT_ID = ids.AGENT_ID
CAPABILITY = ids.CAPABILITY


def validate_agent_id(agent_id: str) -> str:
    return ids.check_agent_id(agent_id)


def parse_capabilities(value: Mapping[str, int] | Iterable[str] | str) -> dict[str, int]:
    """``{"summarize": 4}``, ``["a", "b"]``, ``"a,b"`` or ``"a b"`` (level 3 by default; ``a:5``)."""
    items: dict[str, int] = {}
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        raw = [value] if isinstance(value, str) else list(value)
        tokens = [t for chunk in raw for t in re.split(r"[,\s]+", str(chunk)) if t]
        pairs = []
        for tok in tokens:
            name, _, level = tok.partition(":")
            pairs.append((name, int(level) if level.isdigit() else 3))
    for name, level in pairs:
        if not CAPABILITY.match(name):
            raise ValidationError(
                f"invalid capability {name!r}: use 1-100 letters, digits, '-' or '_'",
                code="INVALID_CAPABILITY",
            )
        if not isinstance(level, int) or not 1 <= level <= 5:
            raise ValidationError(f"capability {name!r} level must be 1-5, got {level!r}")
        items[name] = level
    if not items:
        raise ValidationError("an agent needs at least one capability")
    return items
