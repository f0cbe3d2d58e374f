"""The rule engine: checks a task offer or a result against a :class:`Policy`.

Pure and synchronous: no I/O, no clock (the rate limit lives in
:mod:`agentmesh.safety.monitor`). A check walks the value without recursion (size,
depth and node limits stop it early, so a deeply nested or multi-megabyte payload costs
little), joins the text it found and runs one linear-time RE2 prefilter over it; the
first walk keeps no paths, and only when the prefilter, a watched key or a limit fires
is the value walked again with paths and its matching text looked at rule by rule. Each rule answers
``allow``, ``deny``, ``redact`` or ``flag``; the verdict is the strongest answer::

    checker = SafetyChecker(DEFAULT_POLICY)
    verdict = checker.check_result({"text": "mail me: jane@example.com"})
    verdict.action        # "redact"
    verdict.value         # {"text": "mail me: [REDACTED:email]"}
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping
from typing import Any

from agentmesh.errors import PolicyError, ValidationError
from agentmesh.safety.patterns import Pattern, compile_any, compile_pattern, literal_words
from agentmesh.safety.pii import PiiDetector
from agentmesh.safety.policy import SEVERITY_RISK, Action, Policy
from agentmesh.safety.text import from_bytes, skeleton, valid_text
from agentmesh.safety.walk import (
    BYTES,
    KINDS,
    MAP,
    NUM,
    SEQ,
    STR,
    NumberPath,
    kind_of,
    plain_texts,
    redacted,
)

_STRENGTH = {"allow": 0, "flag": 1, "redact": 2, "deny": 3}
PLATFORM_CONTEXT = frozenset(
    {"correlation_id", "causation_id", "traceparent", "tracestate", "error_context"}
)
"""Context keys the platform itself writes (ids and trace headers): not checked."""


NOT_RUN = frozenset({"refused", "denied", "invalid"})
"""Statuses of a reported tool call that never ran (LLM agents record refused calls)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One rule that fired: which, what it answers, how bad, and why."""

    rule: str
    action: Action
    severity: str
    reason: str

    @property
    def risk(self) -> float:
        return SEVERITY_RISK[self.severity]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "action": self.action,
            "severity": self.severity,
            "risk": self.risk,
            "reason": self.reason,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """The answer of a check: the strongest action of its findings, and the value to use
    (redacted when a rule redacts)."""

    action: Action
    findings: tuple[Finding, ...] = ()
    value: Any = None

    @property
    def allowed(self) -> bool:
        return self.action != "deny"

    @property
    def main(self) -> Finding | None:
        """The finding that decided the verdict (the first of the strongest action)."""
        best = max(self.findings, key=lambda f: _STRENGTH[f.action], default=None)
        return best

    @property
    def rule(self) -> str:
        return self.main.rule if self.main else ""

    @property
    def reason(self) -> str:
        return self.main.reason if self.main else ""

    @property
    def risk(self) -> float:
        return max((f.risk for f in self.findings), default=0.0)

    @property
    def violations(self) -> tuple[Finding, ...]:
        """Findings that deny or redact (what counts against an agent)."""
        if not self.findings:
            return ()
        return tuple(f for f in self.findings if f.action in ("deny", "redact"))


def _verdict(findings: list[Finding], value: Any) -> Verdict:
    if not findings:
        return Verdict("allow", (), value)
    action = max((f.action for f in findings), key=_STRENGTH.__getitem__)
    return Verdict(action, tuple(findings), value)


@dataclasses.dataclass(slots=True)
class _Scan:
    texts: list[tuple[str, str]]  # (path, text) of every string (and number) value
    keys: list[str]  # paths of keys the policy watches
    limit: Finding | None


class SafetyChecker:
    """A compiled :class:`Policy`. Building one compiles every pattern; a pattern RE2
    cannot run raises :class:`PolicyError` naming the field, so a bad policy is refused
    whole before it replaces a good one."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        cf = policy.content_filter
        self._blocked = [
            self._compile(p, "content_filter.blocked_patterns", i)
            for i, p in enumerate(cf.blocked_patterns)
        ]
        self._allowed = [
            self._compile(p, "content_filter.allowed_patterns", i)
            for i, p in enumerate(cf.allowed_patterns)
        ]
        self._blocked_any = compile_any(cf.blocked_patterns)
        self._allowed_any = compile_any(cf.allowed_patterns)
        self._keywords = literal_words(policy.behavior.self_modification)
        self._external = frozenset(policy.behavior.external_keys)
        self._capability_memo: dict[tuple[str, str], list[Finding]] = {}
        self._pii = PiiDetector(policy.pii.detectors)
        parts = [
            p for p in (self._blocked_any, self._keywords, self._pii._pattern) if p is not None
        ]
        self._prefilter: Pattern | None = (
            compile_pattern("|".join(f"(?:{_source(p)})" for p in parts)) if parts else None
        )
        anchored = any(c in p for p in (*cf.blocked_patterns, *cf.allowed_patterns) for c in "^$")
        # per-value matching when anchors or exemptions make a joined text differ
        self._per_value = anchored or bool(cf.allowed_patterns)

    @staticmethod
    def _compile(pattern: str, field: str, index: int) -> Pattern:
        try:
            return compile_pattern(pattern)
        except ValidationError as exc:
            raise PolicyError(exc.message, field=f"{field}[{index}]") from None

    # -- public checks ----------------------------------------------------------------
    def check_offer(
        self,
        payload: Any,
        context: Mapping[str, Any] | None = None,
        *,
        capability: str | None = None,
        agent_type: str = "general",
    ) -> Verdict:
        """Check a task before its handler runs (payload and context values)."""
        findings: list[Finding] = []
        if capability is not None:
            key = (capability, agent_type)  # the policy never changes under a checker
            memo = self._capability_memo.get(key)
            if memo is None:
                memo = self._capability(capability, agent_type)
                if len(self._capability_memo) < 4096:
                    self._capability_memo[key] = memo
            findings += memo
        findings += self._tools(payload, agent_type, ("tool", "tools"))
        ctx = {k: v for k, v in (context or {}).items() if k not in PLATFORM_CONTEXT}
        checked = {"payload": payload, "context": ctx} if ctx else {"payload": payload}
        if self._clean(checked):
            return _verdict(findings, payload)
        scan = self._scan(checked)
        if scan.limit is not None:
            return _verdict([*findings, scan.limit], payload)
        findings += self._keys(scan.keys, "input")
        text_findings, _ = self._texts(scan.texts, self.policy.pii.input, redact=False)
        return _verdict(findings + text_findings, payload)

    def check_result(self, result: Any, *, agent_type: str = "general") -> Verdict:
        """Check a handler's result before it is published; PII is redacted per policy
        (``Verdict.value`` is the result to publish)."""
        findings = self._tools(result, agent_type, ("tool_calls",))
        if self._clean(result):
            return _verdict(findings, result)
        scan = self._scan(result)
        if scan.limit is not None:
            return _verdict([*findings, scan.limit], result)
        findings += self._keys(scan.keys, "output")
        text_findings, redactions = self._texts(scan.texts, self.policy.pii.output, redact=True)
        value = redacted(result, redactions, "$") if redactions else result
        return _verdict(findings + text_findings, value)

    # -- the walk -----------------------------------------------------------------------
    def _clean(self, value: Any) -> bool:
        """True when no text rule, watched key or limit can fire on ``value``: the texts
        are collected level by level without their paths and searched at once. Anything
        else (a prefilter hit, a watched key, a limit, a value of another type) is left
        to :meth:`_scan`, which says where."""
        if self._per_value:
            return False
        texts = plain_texts(value, self.policy.limits, self._external)
        if texts is None:
            return False
        if not texts or self._prefilter is None:
            return True
        blob = valid_text("\n".join(texts))
        return self._prefilter.search(blob) is None and (
            blob.isascii() or self._prefilter.search(skeleton(blob)) is None
        )

    def _scan(self, value: Any) -> _Scan:
        lim = self.policy.limits
        texts: list[tuple[str, str]] = []
        keys: list[str] = []
        size = nodes = 0
        stack: list[tuple[Any, int, str]] = [(value, 0, "$")]
        external = self._external

        def over(rule: str, reason: str) -> _Scan:
            return _Scan(texts, keys, Finding(rule, lim.rule.action, lim.rule.severity, reason))

        while stack:
            v, depth, path = stack.pop()
            nodes += 1
            if nodes > lim.max_nodes:
                return over("limits.nodes", f"more than {lim.max_nodes} values")
            kind = KINDS.get(type(v)) or kind_of(v)
            if kind is STR:
                size += len(v) if v.isascii() else len(v) * 2
                texts.append((path, v))
            elif kind is MAP:
                if depth >= lim.max_depth:
                    return over("limits.depth", f"nested deeper than {lim.max_depth} at {path}")
                for k, x in v.items():
                    key = k if type(k) is str else str(k)
                    size += len(key) + 4
                    sub = f"{path}.{key}"
                    if key in external:
                        keys.append(sub)
                    stack.append((x, depth + 1, sub))
            elif kind is SEQ:
                if depth >= lim.max_depth:
                    return over("limits.depth", f"nested deeper than {lim.max_depth} at {path}")
                size += 2 + len(v)
                stack.extend((x, depth + 1, f"{path}[{i}]") for i, x in enumerate(v))
            elif kind is NUM:
                size += 8
                texts.append((NumberPath(path), repr(v)))
            elif kind is BYTES:
                size += len(v)
                if size <= lim.max_payload_bytes:
                    texts.append((path, from_bytes(v)))
            else:  # None, booleans and anything else
                size += 8
            if size > lim.max_payload_bytes:
                return over("limits.size", f"larger than {lim.max_payload_bytes} bytes")
        return _Scan(texts, keys, None)

    # -- rules --------------------------------------------------------------------------
    def _capability(self, capability: str, agent_type: str) -> list[Finding]:
        rules = self.policy.capabilities
        level = rules.level_of(agent_type)
        lists = rules.levels.get(level)
        if lists is None:
            return []
        spec = rules.rule
        if any(fnmatch.fnmatchcase(capability, p) for p in lists.deny):
            why = f"capability {capability!r} is denied at safety level {level}"
            return [Finding("capability", spec.action, spec.severity, why)]
        if lists.allow and not any(fnmatch.fnmatchcase(capability, p) for p in lists.allow):
            why = f"capability {capability!r} is not allowed at safety level {level}"
            return [Finding("capability", spec.action, spec.severity, why)]
        return []

    def _tools(self, value: Any, agent_type: str, fields: tuple[str, ...]) -> list[Finding]:
        allowed = self.policy.tools.get(agent_type)
        if allowed is None or not isinstance(value, Mapping):
            return []
        named: list[str] = []
        for field in fields:
            raw = value.get(field)
            items = raw if isinstance(raw, list) else [raw] if raw is not None else []
            for item in items[:1000]:
                if isinstance(item, Mapping) and item.get("status") in NOT_RUN:
                    continue  # refused before it ran: nothing was called
                name = item.get("name") if isinstance(item, Mapping) else item
                named.append(str(name)[:200])
        bad = [n for n in named if n not in allowed]
        if not bad:
            return []
        spec = self.policy.capabilities.rule
        why = f"tool {bad[0]!r} is not on the allow-list of agent type {agent_type!r}"
        return [Finding("tool", spec.action, spec.severity, why)]

    def _keys(self, paths: list[str], stage: str) -> list[Finding]:
        if not paths:
            return []
        spec = self.policy.behavior.external_rule
        why = f"external communication key at {paths[0]} ({stage})"
        return [Finding("external_communication", spec.action, spec.severity, why)]

    def _texts(
        self, texts: list[tuple[str, str]], pii_action: Action, *, redact: bool
    ) -> tuple[list[Finding], dict[str, str]]:
        if not texts or self._prefilter is None:
            return [], {}
        if not self._per_value:  # one search over every text joined (lone surrogates never
            blob = valid_text("\n".join([t for _, t in texts]))  # span the joins)
            if self._prefilter.search(blob) is None and (
                blob.isascii() or self._prefilter.search(skeleton(blob)) is None
            ):
                return [], {}
        findings: dict[str, Finding] = {}
        redactions: dict[str, str] = {}
        for path, raw in texts:
            text = valid_text(raw)
            shape = skeleton(text)
            if self._prefilter.search(text) is None and (
                shape is text or self._prefilter.search(shape) is None
            ):
                continue
            self._text_rules(path, text, shape, pii_action, redact, findings, redactions)
        return list(findings.values()), redactions

    def _text_rules(
        self,
        path: str,
        text: str,
        shape: str,
        pii_action: Action,
        redact: bool,
        findings: dict[str, Finding],
        redactions: dict[str, str],
    ) -> None:
        cf = self.policy.content_filter
        exempt = self._allowed_any is not None and self._allowed_any.search(shape) is not None
        if not exempt and self._blocked_any is not None and self._blocked_any.search(shape):
            index = next(i for i, p in enumerate(self._blocked) if p.search(shape))
            why = f"{path} matches blocked pattern {cf.blocked_patterns[index]!r}"
            findings.setdefault(
                "content_filter", Finding("content_filter", cf.rule.action, cf.rule.severity, why)
            )
        if self._keywords is not None and (m := self._keywords.search(shape)) is not None:
            spec = self.policy.behavior.self_modification_rule
            why = f"{path} mentions {m.group(0)!r} (self-modification)"
            findings.setdefault(
                "self_modification", Finding("self_modification", spec.action, spec.severity, why)
            )
        if pii_action == "allow" or isinstance(path, NumberPath):
            return
        matches = self._pii.find(text)
        if not matches:
            return
        for kind in dict.fromkeys(m.kind for m in matches):
            rule = f"pii.{kind}"
            why = f"{path} contains {'an' if kind[0] in 'aei' else 'a'} {kind.replace('_', ' ')}"
            findings.setdefault(rule, Finding(rule, pii_action, self.policy.pii.severity, why))
        if redact and pii_action == "redact":
            redactions[path] = PiiDetector.redact(text, matches)


def _source(pattern: Pattern) -> str:
    return str(pattern.pattern)  # type: ignore[attr-defined]
