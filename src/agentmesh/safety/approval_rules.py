"""Approval rules of a tenant's policy (the ``approvals`` section).

::

    approvals:
      - name: big-payments
        capability: "pay*"          # glob on the task's capability (or the tool's)
        min_priority: 4             # priority >= 4
        payload_pattern: "wire"     # RE2 searched in the canonical JSON of the payload
        min_cost: 100               # payload.cost_estimate >= 100
        tools: ["send_email"]       # LLM tool calls (capability globs) gated by this rule
        deadline_seconds: 3600      # then on_timeout: reject | approve | escalate
        on_timeout: escalate
        escalate_to: admin          # the role that decides after the deadline
        escalate_seconds: 600       # the escalated approval's own deadline (0: none)
        remind_after_seconds: 900   # one reminder while pending

A rule with ``tools`` gates tool calls only; without, it gates tasks whose every given
condition holds. The first matching rule wins. The section may also be a mapping with
the ``rules`` and an optional ``webhook`` the control plane tells of every approval
event (signed with HMAC-SHA256, see :mod:`agentmesh.runtime.approval_webhook`)::

    approvals:
      rules: [...]
      webhook: {url: "https://hooks.example.com/approvals", allow_private: false}
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from agentmesh.errors import PolicyError, ValidationError
from agentmesh.safety.patterns import compile_pattern

_FIELDS = (
    "name",
    "capability",
    "min_priority",
    "payload_pattern",
    "min_cost",
    "tools",
    "deadline_seconds",
    "on_timeout",
    "escalate_to",
    "escalate_seconds",
    "remind_after_seconds",
)
ON_TIMEOUT = ("reject", "approve", "escalate")
ROLES = ("admin", "orchestrator", "agent", "task_executor", "observer", "approver")
MAX_SECONDS = 30 * 86_400


@dataclasses.dataclass(frozen=True, slots=True)
class ApprovalRule:
    """One rule: the conditions that gate, and the deadline with its fallback."""

    name: str
    capability: str | None = None
    min_priority: int | None = None
    payload_pattern: str | None = None
    min_cost: float | None = None
    tools: tuple[str, ...] = ()
    deadline_seconds: float = 0
    on_timeout: str = "reject"
    escalate_to: str = ""
    escalate_seconds: float = 0
    remind_after_seconds: float = 0

    def matches_task(self, capability: str, priority: int, payload: Mapping[str, Any]) -> bool:
        """True when this (task) rule gates a task with these fields."""
        if self.tools:
            return False
        if self.capability is not None and not fnmatch.fnmatchcase(capability, self.capability):
            return False
        if self.min_priority is not None and priority < self.min_priority:
            return False
        if self.min_cost is not None:
            cost = payload.get("cost_estimate")
            if isinstance(cost, bool) or not isinstance(cost, int | float):
                return False
            if cost < self.min_cost:
                return False
        if self.payload_pattern is not None:
            text = orjson.dumps(dict(payload), option=orjson.OPT_SORT_KEYS).decode()
            if compile_pattern(self.payload_pattern).search(text) is None:
                return False
        return True

    def matches_tool(self, tool: str) -> bool:
        """True when this rule gates calls of ``tool``."""
        return any(fnmatch.fnmatchcase(tool, t) for t in self.tools)

    def to_data(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
            if v not in (None, (), "") or k == "name"
        }


def _number(rule: Mapping[str, Any], key: str, path: str, low: float, high: float) -> Any:
    value = rule.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise PolicyError(f"must be a number {low}-{high}", field=f"{path}.{key}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class ApprovalWebhook:
    """Where approval events are posted; ``allow_private`` lets the URL name a private,
    loopback or link-local address (refused otherwise, like metadata addresses)."""

    url: str
    allow_private: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """The ``approvals`` section: its rules and its optional webhook."""

    rules: tuple[ApprovalRule, ...] = ()
    webhook: ApprovalWebhook | None = None

    def __bool__(self) -> bool:
        return bool(self.rules) or self.webhook is not None

    def to_data(self) -> Any:
        rules = [rule.to_data() for rule in self.rules]
        if self.webhook is None:
            return rules
        return {"rules": rules, "webhook": dataclasses.asdict(self.webhook)}


def _webhook(raw: Any) -> ApprovalWebhook | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(map(str, raw)) - {"url", "allow_private"}:
        raise PolicyError("must be a mapping of url and allow_private", field="approvals.webhook")
    url, allow = raw.get("url"), raw.get("allow_private", False)
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PolicyError("must be an http(s) URL with a host", field="approvals.webhook.url")
    if not isinstance(allow, bool):
        raise PolicyError("must be true or false", field="approvals.webhook.allow_private")
    return ApprovalWebhook(str(url), allow)


def parse_approvals(data: Any) -> ApprovalPolicy:
    """Validate the ``approvals`` section (a list of rules, or ``{rules, webhook}``)."""
    if isinstance(data, Mapping):
        unknown = sorted(set(map(str, data)) - {"rules", "webhook"})
        if unknown:
            raise PolicyError(f"unknown keys {', '.join(unknown)}", field="approvals")
        return ApprovalPolicy(
            parse_approval_rules(data.get("rules")), _webhook(data.get("webhook"))
        )
    return ApprovalPolicy(parse_approval_rules(data))


def parse_approval_rules(data: Any) -> tuple[ApprovalRule, ...]:
    """Validate a list of approval rules; :class:`PolicyError` names the field."""
    if data is None:
        return ()
    if not isinstance(data, Sequence) or isinstance(data, str | bytes):
        raise PolicyError("must be a list of rules", field="approvals")
    rules: list[ApprovalRule] = []
    for i, raw in enumerate(data):
        path = f"approvals[{i}]"
        if not isinstance(raw, Mapping):
            raise PolicyError("must be a mapping", field=path)
        unknown = sorted(set(map(str, raw)) - set(_FIELDS))
        if unknown:
            raise PolicyError(f"unknown keys {', '.join(unknown)}", field=path)
        name = raw.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise PolicyError("must be a string of 1-100 characters", field=f"{path}.name")
        for key in ("capability", "payload_pattern", "escalate_to"):
            if raw.get(key) is not None and not isinstance(raw.get(key), str):
                raise PolicyError("must be a string", field=f"{path}.{key}")
        if raw.get("payload_pattern") is not None:
            try:
                compile_pattern(raw["payload_pattern"])
            except ValidationError as exc:
                raise PolicyError(str(exc), field=f"{path}.payload_pattern") from None
        tools = raw.get("tools") or []
        if not isinstance(tools, list) or not all(isinstance(t, str) and t for t in tools):
            raise PolicyError("must be a list of tool names", field=f"{path}.tools")
        on_timeout = raw.get("on_timeout", "reject")
        if on_timeout not in ON_TIMEOUT:
            raise PolicyError(f"must be one of {', '.join(ON_TIMEOUT)}", field=f"{path}.on_timeout")
        escalate_to = raw.get("escalate_to") or ""
        if on_timeout == "escalate" and escalate_to not in ROLES:
            raise PolicyError(
                f"escalation needs a role: one of {', '.join(ROLES)}", field=f"{path}.escalate_to"
            )
        deadline = _number(raw, "deadline_seconds", path, 0, MAX_SECONDS) or 0
        rules.append(
            ApprovalRule(
                name=name,
                capability=raw.get("capability"),
                min_priority=_number(raw, "min_priority", path, 1, 5),
                payload_pattern=raw.get("payload_pattern"),
                min_cost=_number(raw, "min_cost", path, 0, 1e18),
                tools=tuple(tools),
                deadline_seconds=deadline,
                on_timeout=on_timeout,
                escalate_to=escalate_to,
                escalate_seconds=_number(raw, "escalate_seconds", path, 0, MAX_SECONDS) or 0,
                remind_after_seconds=_number(raw, "remind_after_seconds", path, 0, MAX_SECONDS)
                or 0,
            )
        )
    return tuple(rules)


def task_rule(
    rules: Sequence[ApprovalRule], capability: str, priority: int, payload: Mapping[str, Any]
) -> ApprovalRule | None:
    """The first rule gating such a task, or None."""
    return next((r for r in rules if r.matches_task(capability, priority, payload)), None)


def tool_rule(rules: Sequence[ApprovalRule], tool: str) -> ApprovalRule | None:
    """The first rule gating calls of ``tool``, or None."""
    return next((r for r in rules if r.matches_tool(tool)), None)


__all__ = [
    "ApprovalPolicy",
    "ApprovalRule",
    "ApprovalWebhook",
    "parse_approval_rules",
    "parse_approvals",
    "task_rule",
    "tool_rule",
]
