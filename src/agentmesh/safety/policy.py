"""Safety policies as data: the model, its defaults and its validation.

A policy is plain data (YAML, JSON or TOML; see :mod:`agentmesh.safety.loader`)::

    version: 3
    quarantine: {max_violations: 5, window_seconds: 60}
    content_filter:
      blocked_patterns: ['(?i)\\bdrop\\s+table\\b']
      allowed_patterns: []
    behavior_pattern:
      self_modification: {keywords: [modify, change, override, bypass], action: flag}
      external_communication: {keys: [external_url, external_api], action: deny}
    rate_limit: {time_window: 60, max_requests: 100}     # absent: no rate limit
    pii: {detectors: [email, phone, card, iban, api_key], input: flag, output: redact}
    limits: {max_payload_bytes: 262144, max_depth: 32, max_nodes: 20000}
    capabilities:
      agent_types: {general: standard, llm: restricted}
      levels: {restricted: {allow: [summarize, translate], deny: []}}
    tools: {llm: [search, calculator]}

Every rule answers ``allow``, ``deny``, ``redact`` or ``flag`` with a severity
(``low`` 0.2, ``medium`` 0.5, ``high`` 0.8, ``critical`` 1.0 risk). This module is pure:
no I/O; :func:`policy_from_data` validates and raises :class:`PolicyError` naming the
field that is wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

from agentmesh.errors import PolicyError
from agentmesh.safety.approval_rules import ApprovalPolicy, parse_approvals

Action = Literal["allow", "deny", "redact", "flag"]
ACTIONS: tuple[str, ...] = ("allow", "deny", "redact", "flag")
SEVERITY_RISK: dict[str, float] = {"low": 0.2, "medium": 0.5, "high": 0.8, "critical": 1.0}
"""Severity -> risk of a finding."""
SAFETY_LEVELS: tuple[str, ...] = ("restricted", "standard", "experimental", "unrestricted")
PII_DETECTORS: tuple[str, ...] = ("email", "phone", "card", "iban", "api_key")
SELF_MODIFICATION_KEYWORDS = ("modify", "change", "override", "bypass")
EXTERNAL_KEYS = ("external_url", "external_api")
DEFAULT_BLOCKED = (
    r"(?i)<script\b",
    r"(?i)\bdrop\s+table\b",
    r"(?i)\brm\s+-rf\s+/",
)


@dataclasses.dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a rule does when it fires."""

    action: Action = "deny"
    severity: str = "high"

    @property
    def risk(self) -> float:
        return SEVERITY_RISK[self.severity]


@dataclasses.dataclass(frozen=True, slots=True)
class ContentFilter:
    blocked_patterns: tuple[str, ...] = DEFAULT_BLOCKED
    allowed_patterns: tuple[str, ...] = ()
    rule: RuleSpec = RuleSpec("deny", "high")


@dataclasses.dataclass(frozen=True, slots=True)
class BehaviorPattern:
    self_modification: tuple[str, ...] = SELF_MODIFICATION_KEYWORDS
    self_modification_rule: RuleSpec = RuleSpec("flag", "medium")
    external_keys: tuple[str, ...] = EXTERNAL_KEYS
    external_rule: RuleSpec = RuleSpec("deny", "high")


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimit:
    time_window: float = 60.0
    max_requests: int = 100
    rule: RuleSpec = RuleSpec("deny", "low")


@dataclasses.dataclass(frozen=True, slots=True)
class PiiRule:
    detectors: tuple[str, ...] = PII_DETECTORS
    input: Action = "flag"
    output: Action = "redact"
    severity: str = "high"


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 256 * 1024
    max_depth: int = 32
    max_nodes: int = 20_000
    rule: RuleSpec = RuleSpec("deny", "medium")


@dataclasses.dataclass(frozen=True, slots=True)
class LevelLists:
    allow: tuple[str, ...] = ()  # empty: every capability not denied
    deny: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class CapabilityRules:
    agent_types: Mapping[str, str] = dataclasses.field(default_factory=dict)
    default_level: str = "standard"
    levels: Mapping[str, LevelLists] = dataclasses.field(default_factory=dict)
    rule: RuleSpec = RuleSpec("deny", "high")

    def level_of(self, agent_type: str) -> str:
        return self.agent_types.get(agent_type, self.default_level)


@dataclasses.dataclass(frozen=True, slots=True)
class Quarantine:
    max_violations: int = 5
    window_seconds: float = 60.0
    alignment_threshold: float = 0.8  # SafetyMonitor's; the evaluator's misaligned is < 0.49


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """A whole safety policy (immutable; a reload builds a new one)."""

    version: int = 1
    name: str = "default"
    content_filter: ContentFilter = ContentFilter()
    behavior: BehaviorPattern = BehaviorPattern()
    rate_limit: RateLimit | None = None
    pii: PiiRule = PiiRule()
    limits: Limits = Limits()
    capabilities: CapabilityRules = CapabilityRules()
    tools: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    quarantine: Quarantine = Quarantine()
    approvals: ApprovalPolicy = dataclasses.field(default_factory=ApprovalPolicy)  # approval gates


DEFAULT_POLICY = Policy()


# -- validation (data -> Policy) ------------------------------------------------------
LineOf = Callable[[str], int | None]


class _Reader:
    """Typed access to nested policy data that names the field (and its line) on error."""

    def __init__(self, line_of: LineOf) -> None:
        self.line_of = line_of

    def fail(self, path: str, message: str) -> PolicyError:
        return PolicyError(message, field=path, line=self.line_of(path))

    def section(self, data: Any, path: str, known: tuple[str, ...]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise self.fail(path, f"must be a mapping, got {type(data).__name__}")
        for key in data:
            if key not in known:
                sub = f"{path}.{key}" if path else str(key)
                raise self.fail(sub, f"unknown field; expected one of {', '.join(known)}")
        return dict(data)

    def strings(self, data: Any, path: str, default: tuple[str, ...]) -> tuple[str, ...]:
        if data is None:
            return default
        if not isinstance(data, list):
            raise self.fail(path, "must be a list of strings")
        for i, item in enumerate(data):
            if not isinstance(item, str) or not item:
                raise self.fail(f"{path}[{i}]", "must be a non-empty string")
        return tuple(data)

    def number(self, data: Any, path: str, default: float, low: float, high: float) -> float:
        if data is None:
            return default
        if isinstance(data, bool) or not isinstance(data, int | float) or not low <= data <= high:
            raise self.fail(path, f"must be a number in [{low:g}, {high:g}], got {data!r}")
        return float(data)

    def integer(self, data: Any, path: str, default: int, low: int, high: int) -> int:
        if data is None:
            return default
        if isinstance(data, bool) or not isinstance(data, int) or not low <= data <= high:
            raise self.fail(path, f"must be an integer in [{low}, {high}], got {data!r}")
        return data

    def choice(self, data: Any, path: str, default: str, options: tuple[str, ...]) -> str:
        if data is None:
            return default
        if data not in options:
            raise self.fail(path, f"must be one of {', '.join(options)}, got {data!r}")
        return str(data)

    def rule(self, data: Mapping[str, Any], path: str, default: RuleSpec) -> RuleSpec:
        action = self.choice(data.get("action"), f"{path}.action", default.action, ACTIONS)
        severity = self.choice(
            data.get("severity"), f"{path}.severity", default.severity, tuple(SEVERITY_RISK)
        )
        return RuleSpec(action, severity)  # type: ignore[arg-type]


_TOP = (
    "version",
    "name",
    "quarantine",
    "content_filter",
    "behavior_pattern",
    "rate_limit",
    "pii",
    "limits",
    "capabilities",
    "tools",
    "approvals",
)
_RULE = ("action", "severity")


def policy_from_data(data: Any, line_of: LineOf | None = None) -> Policy:
    """Validate parsed policy data into a :class:`Policy` (missing sections: defaults).

    Regexes are not compiled here (see :class:`agentmesh.safety.engine.SafetyChecker`).
    """
    r = _Reader(line_of or (lambda _path: None))
    top = r.section(data, "", _TOP)
    d = DEFAULT_POLICY
    name = top.get("name", d.name)
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise r.fail("name", "must be a string of 1-100 characters")

    q = r.section(
        top.get("quarantine"),
        "quarantine",
        ("max_violations", "window_seconds", "alignment_threshold"),
    )
    quarantine = Quarantine(
        r.integer(q.get("max_violations"), "quarantine.max_violations", 5, 1, 1_000_000),
        r.number(q.get("window_seconds"), "quarantine.window_seconds", 60.0, 0.1, 86_400),
        r.number(q.get("alignment_threshold"), "quarantine.alignment_threshold", 0.8, 0, 1),
    )

    cf = r.section(
        top.get("content_filter"),
        "content_filter",
        ("blocked_patterns", "allowed_patterns", *_RULE),
    )
    content = ContentFilter(
        r.strings(cf.get("blocked_patterns"), "content_filter.blocked_patterns", DEFAULT_BLOCKED),
        r.strings(cf.get("allowed_patterns"), "content_filter.allowed_patterns", ()),
        r.rule(cf, "content_filter", d.content_filter.rule),
    )

    bp = r.section(
        top.get("behavior_pattern"),
        "behavior_pattern",
        ("self_modification", "external_communication"),
    )
    sm = r.section(
        bp.get("self_modification"), "behavior_pattern.self_modification", ("keywords", *_RULE)
    )
    ec = r.section(
        bp.get("external_communication"),
        "behavior_pattern.external_communication",
        ("keys", *_RULE),
    )
    behavior = BehaviorPattern(
        r.strings(
            sm.get("keywords"),
            "behavior_pattern.self_modification.keywords",
            SELF_MODIFICATION_KEYWORDS,
        ),
        r.rule(sm, "behavior_pattern.self_modification", d.behavior.self_modification_rule),
        r.strings(ec.get("keys"), "behavior_pattern.external_communication.keys", EXTERNAL_KEYS),
        r.rule(ec, "behavior_pattern.external_communication", d.behavior.external_rule),
    )

    rate: RateLimit | None = None
    if top.get("rate_limit") is not None:
        rl = r.section(top["rate_limit"], "rate_limit", ("time_window", "max_requests", *_RULE))
        rate = RateLimit(
            r.number(rl.get("time_window"), "rate_limit.time_window", 60.0, 0.001, 86_400),
            r.integer(rl.get("max_requests"), "rate_limit.max_requests", 100, 1, 10_000_000),
            r.rule(rl, "rate_limit", RateLimit().rule),
        )

    p = r.section(top.get("pii"), "pii", ("detectors", "input", "output", "severity"))
    detectors = r.strings(p.get("detectors"), "pii.detectors", PII_DETECTORS)
    for i, det in enumerate(detectors):
        if det not in PII_DETECTORS:
            raise r.fail(
                f"pii.detectors[{i}]", f"unknown detector {det!r}; use {', '.join(PII_DETECTORS)}"
            )
    pii = PiiRule(
        detectors,
        r.choice(p.get("input"), "pii.input", "flag", ACTIONS),  # type: ignore[arg-type]
        r.choice(p.get("output"), "pii.output", "redact", ACTIONS),  # type: ignore[arg-type]
        r.choice(p.get("severity"), "pii.severity", "high", tuple(SEVERITY_RISK)),
    )

    lm = r.section(
        top.get("limits"), "limits", ("max_payload_bytes", "max_depth", "max_nodes", *_RULE)
    )
    limits = Limits(
        r.integer(
            lm.get("max_payload_bytes"),
            "limits.max_payload_bytes",
            d.limits.max_payload_bytes,
            64,
            64 * 1024 * 1024,
        ),
        r.integer(lm.get("max_depth"), "limits.max_depth", d.limits.max_depth, 1, 200),
        r.integer(lm.get("max_nodes"), "limits.max_nodes", d.limits.max_nodes, 1, 10_000_000),
        r.rule(lm, "limits", d.limits.rule),
    )

    cp = r.section(
        top.get("capabilities"), "capabilities", ("agent_types", "default_level", "levels", *_RULE)
    )
    types = r.section(
        cp.get("agent_types"),
        "capabilities.agent_types",
        tuple(str(k) for k in (cp.get("agent_types") or {})),
    )
    for key, level in types.items():
        r.choice(level, f"capabilities.agent_types.{key}", "standard", SAFETY_LEVELS)
    lv = r.section(cp.get("levels"), "capabilities.levels", SAFETY_LEVELS)
    levels: dict[str, LevelLists] = {}
    for level, lists in lv.items():
        ls = r.section(lists, f"capabilities.levels.{level}", ("allow", "deny"))
        levels[level] = LevelLists(
            r.strings(ls.get("allow"), f"capabilities.levels.{level}.allow", ()),
            r.strings(ls.get("deny"), f"capabilities.levels.{level}.deny", ()),
        )
    capabilities = CapabilityRules(
        {str(k): str(v) for k, v in types.items()},
        r.choice(cp.get("default_level"), "capabilities.default_level", "standard", SAFETY_LEVELS),
        levels,
        r.rule(cp, "capabilities", d.capabilities.rule),
    )

    raw_tools = top.get("tools")
    tools_data = r.section(
        raw_tools,
        "tools",
        tuple(str(k) for k in (raw_tools or {})) if isinstance(raw_tools, Mapping) else (),
    )
    tools = {str(k): r.strings(v, f"tools.{k}", ()) for k, v in tools_data.items()}

    return Policy(
        version=r.integer(top.get("version"), "version", 1, 0, 2**53),
        name=name,
        content_filter=content,
        behavior=behavior,
        rate_limit=rate,
        pii=pii,
        limits=limits,
        capabilities=capabilities,
        tools=tools,
        quarantine=quarantine,
        approvals=parse_approvals(top.get("approvals")),
    )


def policy_to_data(policy: Policy) -> dict[str, Any]:
    """The data form of a policy (what :func:`policy_from_data` reads back)."""

    def rule(spec: RuleSpec) -> dict[str, str]:
        return {"action": spec.action, "severity": spec.severity}

    data: dict[str, Any] = {
        "version": policy.version,
        "name": policy.name,
        "quarantine": dataclasses.asdict(policy.quarantine),
        "content_filter": {
            "blocked_patterns": list(policy.content_filter.blocked_patterns),
            "allowed_patterns": list(policy.content_filter.allowed_patterns),
            **rule(policy.content_filter.rule),
        },
        "behavior_pattern": {
            "self_modification": {
                "keywords": list(policy.behavior.self_modification),
                **rule(policy.behavior.self_modification_rule),
            },
            "external_communication": {
                "keys": list(policy.behavior.external_keys),
                **rule(policy.behavior.external_rule),
            },
        },
        "pii": {
            "detectors": list(policy.pii.detectors),
            "input": policy.pii.input,
            "output": policy.pii.output,
            "severity": policy.pii.severity,
        },
        "limits": {
            "max_payload_bytes": policy.limits.max_payload_bytes,
            "max_depth": policy.limits.max_depth,
            "max_nodes": policy.limits.max_nodes,
            **rule(policy.limits.rule),
        },
        "capabilities": {
            "agent_types": dict(policy.capabilities.agent_types),
            "default_level": policy.capabilities.default_level,
            "levels": {
                k: {"allow": list(v.allow), "deny": list(v.deny)}
                for k, v in policy.capabilities.levels.items()
            },
            **rule(policy.capabilities.rule),
        },
        "tools": {k: list(v) for k, v in policy.tools.items()},
    }
    if policy.approvals:
        data["approvals"] = policy.approvals.to_data()
    if policy.rate_limit is not None:
        data["rate_limit"] = {
            "time_window": policy.rate_limit.time_window,
            "max_requests": policy.rate_limit.max_requests,
            **rule(policy.rate_limit.rule),
        }
    return data
