"""The replicated state machine of a decentralized group (pure: no I/O, no clock).

Every node applies the same committed commands in the same order, so every replica holds
the same state. A command is a JSON object with an ``op``:

=============  ===========================================================================
``set``        ``{key, value, expect_version?}``: shared configuration (versioned; with
               ``expect_version`` a compare-and-set)
``delete``     ``{key, expect_version?}``
``decide``     ``{key, value}``: the first committed value for ``key`` is the decision;
               a different later value is rejected with the decided one as the reason
``submit``     ``{tasks: [{id, payload}]}``: tasks enter the pool (a known id is ignored)
``claim``      ``{node, max}``: up to ``max`` pending tasks go to ``node`` (submit order)
``complete``   ``{task, node, outcome, result}``: the result of a task claimed by ``node``;
               committed once: a second result, or one from a node that lost the claim,
               is rejected
``release``    ``{node}``: the unfinished claims of a dead node go back to the pool
=============  ===========================================================================

A command may carry a proposal id ``pid``: a command whose ``pid`` was applied before is
not applied again, its first answer is returned (Raft's client sessions), so a proposer
may retry a proposal whose outcome it did not learn (a leader change) without applying
it twice. The last ``SEEN_PIDS`` ids are remembered.

:meth:`ClusterState.apply` returns ``{"ok": True, ...}`` or ``{"ok": False, "reason"}``; a
rejection is part of the log too (every replica rejects it the same way). ``digest`` chains
every applied command, so two replicas with the same ``applied`` and ``digest`` applied
the same entries.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

from agentmesh.errors import ValidationError

OPS = ("set", "delete", "decide", "submit", "claim", "complete", "release")
OUTCOMES = ("completed", "failed")
MAX_BATCH = 1000
SEEN_PIDS = 20_000


def _text(command: dict[str, Any], name: str, limit: int = 256) -> str:
    value = command.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValidationError(f"{command.get('op')}: {name!r} must be a string of 1-{limit}")
    return value


def _canonical(command: Any) -> bytes:
    """Deterministic bytes of a command (sorted keys; integers of any size)."""
    try:
        return orjson.dumps(command, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        return json.dumps(command, sort_keys=True, default=str).encode()


def validate(command: Any) -> dict[str, Any]:
    """Check the shape of a command before it is proposed; raises ValidationError."""
    if not isinstance(command, dict):
        raise ValidationError("a proposal is a JSON object with an 'op'")
    op = command.get("op")
    pid = command.get("pid")
    if pid is not None and (not isinstance(pid, str) or not 1 <= len(pid) <= 64):
        raise ValidationError("'pid' must be a string of 1-64")
    if op not in OPS:
        raise ValidationError(f"unknown proposal op {op!r}: use one of {', '.join(OPS)}")
    if op in ("set", "delete", "decide"):
        _text(command, "key")
        if op != "delete" and "value" not in command:
            raise ValidationError(f"{op}: 'value' is required")
        ev = command.get("expect_version")
        if ev is not None and (not isinstance(ev, int) or isinstance(ev, bool) or ev < 0):
            raise ValidationError(f"{op}: 'expect_version' must be an integer >= 0")
    elif op == "submit":
        tasks = command.get("tasks")
        if not isinstance(tasks, list) or not 1 <= len(tasks) <= MAX_BATCH:
            raise ValidationError(f"submit: 'tasks' must be a list of 1-{MAX_BATCH} tasks")
        for t in tasks:
            if not isinstance(t, dict) or not isinstance(t.get("payload", {}), dict):
                raise ValidationError("submit: each task is {'id': str, 'payload': object}")
            _text(t, "id")
    elif op == "claim":
        _text(command, "node")
        n = command.get("max")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_BATCH:
            raise ValidationError(f"claim: 'max' must be 1-{MAX_BATCH}")
    elif op == "complete":
        _text(command, "task")
        _text(command, "node")
        if command.get("outcome") not in OUTCOMES:
            raise ValidationError(f"complete: 'outcome' must be one of {OUTCOMES}")
    elif op == "release":
        _text(command, "node")
    return command


class ClusterState:
    """Configuration, decisions and the task pool, as every replica sees them."""

    def __init__(self) -> None:
        self.applied = 0
        self.digest = ""
        self.config: dict[str, dict[str, Any]] = {}
        self.decisions: dict[str, Any] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, None] = {}  # insertion-ordered set: the claim order
        self.claims: dict[str, dict[str, None]] = {}  # node -> its unfinished claims
        self.results_committed = 0
        self.results_rejected = 0
        self.seen: dict[str, dict[str, Any]] = {}  # pid -> first answer (insertion order)

    # -- applying -----------------------------------------------------------------------
    def apply(self, command: dict[str, Any]) -> dict[str, Any]:
        """Apply one committed command; deterministic, never raises on bad input."""
        result: dict[str, Any]
        pid = command.get("pid") if isinstance(command, dict) else None
        if isinstance(pid, str) and pid in self.seen:
            result = {**self.seen[pid], "duplicate": True}
        else:
            try:
                validate(command)
                result = getattr(self, f"_op_{command['op']}")(command)
            except ValidationError as exc:
                result = {"ok": False, "reason": exc.message}
            except Exception as exc:  # noqa: BLE001 - an entry must never stop the replicated log (see below)
                # an entry must never stop the log (pysyncobj would retry it forever); every
                # replica fails the same way, so a rejection keeps them identical
                result = {"ok": False, "reason": f"{type(exc).__name__}: {exc}"}
            if isinstance(pid, str):
                self.seen[pid] = result
                if len(self.seen) > SEEN_PIDS:
                    del self.seen[next(iter(self.seen))]
        self.applied += 1
        h = hashlib.sha256(self.digest.encode())
        h.update(_canonical(command))
        h.update(b"1" if result["ok"] else b"0")
        self.digest = h.hexdigest()
        return result

    def _op_set(self, c: dict[str, Any]) -> dict[str, Any]:
        key = c["key"]
        current = self.config.get(key)
        version = current["version"] if current else 0
        if c.get("expect_version") is not None and c["expect_version"] != version:
            return {
                "ok": False,
                "reason": f"{key!r} is at version {version}, not {c['expect_version']}",
            }
        self.config[key] = {"value": c["value"], "version": version + 1}
        return {"ok": True, "key": key, "version": version + 1}

    def _op_delete(self, c: dict[str, Any]) -> dict[str, Any]:
        key = c["key"]
        current = self.config.get(key)
        if current is None:
            return {"ok": False, "reason": f"no configuration key {key!r}"}
        if c.get("expect_version") is not None and c["expect_version"] != current["version"]:
            return {
                "ok": False,
                "reason": f"{key!r} is at version {current['version']}, not {c['expect_version']}",
            }
        del self.config[key]
        return {"ok": True, "key": key}

    def _op_decide(self, c: dict[str, Any]) -> dict[str, Any]:
        key, value = c["key"], c["value"]
        if key in self.decisions:
            decided = self.decisions[key]
            if decided != value:
                return {"ok": False, "reason": f"{key!r} is already decided: {decided!r}"}
            return {"ok": True, "key": key, "value": decided, "new": False}
        self.decisions[key] = value
        return {"ok": True, "key": key, "value": value, "new": True}

    def _op_submit(self, c: dict[str, Any]) -> dict[str, Any]:
        added = 0
        for t in c["tasks"]:
            if t["id"] in self.tasks:
                continue
            self.tasks[t["id"]] = {
                "payload": dict(t.get("payload") or {}),
                "status": "pending",
                "claimant": None,
                "claims": 0,
            }
            self.pending[t["id"]] = None
            added += 1
        return {"ok": True, "added": added, "known": len(c["tasks"]) - added}

    def _op_claim(self, c: dict[str, Any]) -> dict[str, Any]:
        node, taken = c["node"], []
        mine = self.claims.setdefault(node, {})
        for task_id in list(self.pending)[: c["max"]]:
            del self.pending[task_id]
            task = self.tasks[task_id]
            task.update(status="claimed", claimant=node, claims=task["claims"] + 1)
            mine[task_id] = None
            taken.append(task_id)
        return {"ok": True, "node": node, "tasks": taken}

    def _op_complete(self, c: dict[str, Any]) -> dict[str, Any]:
        task_id, node = c["task"], c["node"]
        task = self.tasks.get(task_id)
        reason = None
        if task is None:
            reason = f"unknown task {task_id!r}"
        elif task["status"] == "done":
            reason = f"task {task_id!r} already has a committed result (by {task['done_by']})"
        elif task["claimant"] != node:
            reason = f"task {task_id!r} is not claimed by {node} (claimant: {task['claimant']})"
        if reason is not None or task is None:
            self.results_rejected += 1
            return {"ok": False, "reason": reason}
        task.update(
            status="done",
            outcome=c["outcome"],
            result=c.get("result"),
            done_by=node,
            claimant=None,
        )
        self.claims.get(node, {}).pop(task_id, None)
        self.results_committed += 1
        return {"ok": True, "task": task_id}

    def _op_release(self, c: dict[str, Any]) -> dict[str, Any]:
        node = c["node"]
        released = list(self.claims.pop(node, {}))
        # back to the head of the pool: they have waited longest
        self.pending = {**dict.fromkeys(released), **self.pending}
        for task_id in released:
            self.tasks[task_id].update(status="pending", claimant=None)
        return {"ok": True, "node": node, "released": released}

    # -- reading ------------------------------------------------------------------------
    def claimed_by(self, node: str) -> list[str]:
        return list(self.claims.get(node, {}))

    def claimants(self) -> list[str]:
        """Nodes holding unfinished claims."""
        return [n for n, tasks in self.claims.items() if tasks]

    def outcome(self, task_id: str) -> dict[str, Any] | None:
        task = self.tasks.get(task_id)
        if task is None or task["status"] != "done":
            return None
        return {"outcome": task["outcome"], "result": task.get("result"), "node": task["done_by"]}

    def summary(self) -> dict[str, Any]:
        counts = {"pending": len(self.pending), "claimed": 0, "done": 0}
        for task in self.tasks.values():
            if task["status"] != "pending":
                counts[task["status"]] += 1
        return {
            "applied": self.applied,
            "digest": self.digest,
            "config_keys": len(self.config),
            "decisions": len(self.decisions),
            "tasks": {"total": len(self.tasks), **counts},
            "results_committed": self.results_committed,
            "results_rejected": self.results_rejected,
        }
