"""Reading policy files: YAML (JSON is YAML too) or TOML, with the line of a bad field.

:func:`load_policy_text` parses and validates; every error is a
:class:`~agentmesh.safety.policy.PolicyError` naming the source, the line and the field,
and nothing is half-applied: a policy is built and compiled whole or refused.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from agentmesh.errors import PolicyError
from agentmesh.safety.engine import SafetyChecker
from agentmesh.safety.policy import Policy, policy_from_data


def _yaml_lines(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value)
            sub = f"{path}.{name}" if path else name
            lines[sub] = key.start_mark.line + 1
            _yaml_lines(value, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_lines(item, f"{path}[{i}]", lines)


def parse_policy(text: str, *, fmt: str = "yaml", source: str = "policy") -> Policy:
    """Parse and validate policy text (``fmt`` is ``yaml``, ``json`` or ``toml``)."""
    lines: dict[str, int] = {}
    data: Any
    try:
        if fmt == "toml":
            data = tomllib.loads(text)
        else:
            loader = yaml.SafeLoader(text)
            try:
                node = loader.get_single_node()
                data = loader.construct_document(node) if node is not None else {}
            finally:
                loader.dispose()
            if node is not None:
                _yaml_lines(node, "", lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(f"{source}: not valid YAML: {exc.problem}", line=line) from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise PolicyError(f"{source}: cannot parse: {str(exc).splitlines()[0]}") from None

    def line_of(path: str) -> int | None:
        while path:
            if path in lines:
                return lines[path]
            path = path.rsplit(".", 1)[0] if "." in path else path.split("[", 1)[0]
            if path in lines:
                return lines[path]
            if "." not in path and "[" not in path:
                break
        return None

    policy = policy_from_data(data, line_of)
    try:
        SafetyChecker(policy)  # refuse a pattern RE2 cannot run, whole
    except PolicyError as exc:
        raise PolicyError(
            exc.message.split(": ", 1)[-1], field=exc.field, line=line_of(exc.field)
        ) from None
    return policy


def load_policy_file(path: str | Path) -> Policy:
    """Read a policy file (``.toml`` is TOML, anything else YAML/JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read safety policy {p}: {exc}") from None
    try:
        return parse_policy(text, fmt="toml" if p.suffix == ".toml" else "yaml", source=p.name)
    except PolicyError as exc:
        raise PolicyError(f"{p.name}: {exc.message}") from None
