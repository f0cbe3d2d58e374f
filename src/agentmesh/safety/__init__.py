"""Safety and alignment (spec 3.12): policies as data, a rule engine on the task path,
alignment scores and platform-wide quarantine.

* :mod:`~agentmesh.safety.policy` - the policy model, its defaults and validation;
* :mod:`~agentmesh.safety.loader` - YAML/JSON/TOML files, errors with line and field;
* :mod:`~agentmesh.safety.engine` - :class:`SafetyChecker`, pure and linear-time (RE2);
* :mod:`~agentmesh.safety.alignment` / :mod:`~agentmesh.safety.monitor` - the
  AlignmentEvaluator and the per-agent violation window;
* :mod:`~agentmesh.safety.guard` - what a process runs: checks, quarantine, hot reload.
"""

from agentmesh.errors import PolicyError
from agentmesh.safety.alignment import Alignment
from agentmesh.safety.engine import Finding, SafetyChecker, Verdict
from agentmesh.safety.loader import load_policy_file, parse_policy
from agentmesh.safety.policy import (
    DEFAULT_POLICY,
    Policy,
    policy_from_data,
    policy_to_data,
)

__all__ = [
    "DEFAULT_POLICY",
    "Alignment",
    "Finding",
    "Policy",
    "PolicyError",
    "SafetyChecker",
    "Verdict",
    "load_policy_file",
    "parse_policy",
    "policy_from_data",
    "policy_to_data",
]
