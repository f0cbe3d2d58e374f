"""What a capability does and what payload it takes, declared when an agent registers.

An agent may describe each capability with a sentence and a JSON Schema of its payload::

    @mesh.agent(
        "calc-1",
        capabilities=["calculator"],
        capability_specs={
            "calculator": {
                "description": "Evaluates an arithmetic expression",
                "input_schema": {
                    "type": "object",
                    "properties": {"expression": {"type": "string"}},
                    "required": ["expression"],
                },
            }
        },
    )

The specs travel in the agent's heartbeats, so every registry of the tenant knows them
(:attr:`agentmesh.runtime.registry.AgentRecord.capability_specs`); LLM agents offer them
to their model as tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentmesh.errors import ValidationError

MAX_DESCRIPTION = 1000
MAX_SCHEMA_BYTES = 16_384


@dataclass(frozen=True, slots=True)
class CapabilitySpec:
    """A capability's ``description`` and the JSON Schema (``input_schema``) of its payload."""

    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})

    def to_dict(self) -> dict[str, Any]:
        return {"description": self.description, "input_schema": self.input_schema}


def parse_spec(capability: str, raw: CapabilitySpec | Mapping[str, Any]) -> CapabilitySpec:
    """Validate one spec (a :class:`CapabilitySpec` or ``{"description", "input_schema"}``)."""
    if isinstance(raw, CapabilitySpec):
        raw = raw.to_dict()
    if not isinstance(raw, Mapping):
        raise ValidationError(f"capability {capability!r}: its spec must be an object")
    unknown = set(raw) - {"description", "input_schema"}
    if unknown:
        raise ValidationError(
            f"capability {capability!r}: unknown spec keys {sorted(unknown)}; "
            "use 'description' and 'input_schema'"
        )
    description = raw.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ValidationError(
            f"capability {capability!r}: description must be text of at most "
            f"{MAX_DESCRIPTION} characters"
        )
    schema = raw.get("input_schema", {"type": "object"})
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        raise ValidationError(
            f"capability {capability!r}: input_schema must be a JSON Schema of type 'object'"
        )
    import json

    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError):
        raise ValidationError(f"capability {capability!r}: input_schema is not JSON") from None
    if size > MAX_SCHEMA_BYTES:
        raise ValidationError(
            f"capability {capability!r}: input_schema is larger than {MAX_SCHEMA_BYTES} bytes"
        )
    return CapabilitySpec(description, dict(schema))


def parse_specs(
    capabilities: Mapping[str, int],
    specs: Mapping[str, CapabilitySpec | Mapping[str, Any]] | None,
) -> dict[str, CapabilitySpec]:
    """Specs for some of ``capabilities`` (a spec for a capability the agent lacks is an error)."""
    out: dict[str, CapabilitySpec] = {}
    for cap, raw in (specs or {}).items():
        if cap not in capabilities:
            raise ValidationError(
                f"capability_specs names {cap!r}, which is not one of the agent's capabilities"
            )
        out[cap] = parse_spec(cap, raw)
    return out


def specs_from_heartbeat(raw: Any) -> dict[str, dict[str, Any]]:
    """The specs a heartbeat carries, dropping any that are malformed (untrusted input)."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for cap, spec in raw.items():
        try:
            out[str(cap)] = parse_spec(str(cap), spec).to_dict()
        except ValidationError:
            continue
    return out
