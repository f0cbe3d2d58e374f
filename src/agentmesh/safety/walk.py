"""Walking a payload for the safety checks: the kind of each value, the plain texts of a
clean value, and a copy with some strings redacted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentmesh.safety.policy import Limits

__all__ = [
    "BYTES",
    "KINDS",
    "MAP",
    "NUM",
    "OTHER",
    "SEQ",
    "STR",
    "NumberPath",
    "kind_of",
    "plain_texts",
    "redacted",
]

STR, MAP, SEQ, NUM, BYTES, OTHER = "str", "map", "seq", "num", "bytes", "other"
KINDS: dict[type, str] = {
    str: STR,
    dict: MAP,
    list: SEQ,
    tuple: SEQ,
    int: NUM,
    float: NUM,
    bool: OTHER,
    type(None): OTHER,
    bytes: BYTES,
}
"""The kind of a value by its exact type (the fast path of the walk)."""


def kind_of(value: Any) -> str:
    """The kind of a value of another type (subclasses, other mappings ...)."""
    if isinstance(value, str):
        return STR
    if isinstance(value, Mapping):
        return MAP
    if isinstance(value, list | tuple):
        return SEQ
    if isinstance(value, bool):
        return OTHER
    if isinstance(value, int | float):
        return NUM
    if isinstance(value, bytes | bytearray | memoryview):
        return BYTES
    return OTHER


class NumberPath(str):
    """The path of a number value: the content rules match its digits, the PII detectors
    never read it (ids, counters and timestamps would pass for card or phone numbers: a
    random 16-digit integer passes the Luhn check 1 time in 10)."""

    __slots__ = ()


def plain_texts(value: Any, limits: Limits, external: frozenset[str]) -> list[str] | None:
    """Every string (and number, as text) in ``value``, collected level by level without
    their paths; None when the checker must walk it with paths instead: a limit is
    reached, a watched (``external``) key or a non-str key appears, or a value has another
    type than the JSON ones."""
    texts: list[str] = []
    size = nodes = depth = 0
    level = [value]
    while level:
        nodes += len(level)
        if nodes > limits.max_nodes:
            return None
        deeper: list[Any] = []
        nest = depth < limits.max_depth  # containers allowed at this level
        for v in level:
            t = type(v)
            if t is str:
                size += len(v) if v.isascii() else len(v) * 2
                texts.append(v)
            elif t is dict:
                if not nest:
                    return None
                for k, x in v.items():
                    if type(k) is not str or k in external:
                        return None
                    size += len(k) + 4
                    deeper.append(x)
            elif t is list or t is tuple:
                if not nest:
                    return None
                size += 2 + len(v)
                deeper.extend(v)
            elif t is int or t is float:
                size += 8
                texts.append(repr(v))
            elif v is None or t is bool:
                size += 8
            else:
                return None
        if size > limits.max_payload_bytes:
            return None
        level = deeper
        depth += 1
    return texts


def redacted(value: Any, redactions: dict[str, str], path: str) -> Any:
    """A copy of ``value`` with the strings at ``redactions``' paths replaced."""
    if isinstance(value, str):
        return redactions.get(path, value)
    if isinstance(value, Mapping):
        return {k: redacted(x, redactions, f"{path}.{k}") for k, x in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(x, redactions, f"{path}[{i}]") for i, x in enumerate(value)]
    return value
