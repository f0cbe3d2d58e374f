"""The SafetyMonitor's memory for one agent: violations in a sliding window, a request
rate window and the alignment score; it says when the agent must be quarantined.

Pure: the caller passes the time (``now``, seconds on a monotonic clock).
"""

from __future__ import annotations

from collections import deque

from agentmesh.safety.alignment import Alignment
from agentmesh.safety.engine import Finding
from agentmesh.safety.policy import Quarantine, RateLimit


class AgentMonitor:
    """Violations, rate and alignment of one agent (see the module doc)."""

    def __init__(self) -> None:
        self.violations: deque[float] = deque()
        self.requests: deque[float] = deque()
        self.alignment = Alignment()
        self.total_violations = 0

    def allow_request(self, rate: RateLimit | None, now: float) -> bool:
        """Count one request; False when the agent is over its rate limit."""
        if rate is None:
            return True
        horizon = now - rate.time_window
        while self.requests and self.requests[0] <= horizon:
            self.requests.popleft()
        if len(self.requests) >= rate.max_requests:
            return False
        self.requests.append(now)
        return True

    def record(self, findings: tuple[Finding, ...], policy: Quarantine, now: float) -> int:
        """Record violations (deny/redact findings of the agent's output); returns how many
        fall in the current window."""
        for f in findings:
            self.alignment = self.alignment.violation(f.rule, f.risk)
        if findings:
            self.total_violations += 1
            self.violations.append(now)
        horizon = now - policy.window_seconds
        while self.violations and self.violations[0] <= horizon:
            self.violations.popleft()
        return len(self.violations)

    def must_quarantine(self, policy: Quarantine) -> str | None:
        """Why the agent must be quarantined now, or None."""
        if len(self.violations) >= policy.max_violations:
            return (
                f"{len(self.violations)} safety violations within {policy.window_seconds:g}s "
                f"(limit {policy.max_violations})"
            )
        if self.alignment.misaligned:
            return f"misaligned (alignment score {self.alignment.score:.2f} < 0.49)"
        return None

    def reset(self) -> None:
        """After an admin's release: a clean slate."""
        self.violations.clear()
        self.requests.clear()
        self.alignment = Alignment()
