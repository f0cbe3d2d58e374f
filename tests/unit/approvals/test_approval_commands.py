"""Approval gates on the command bus (memory store): held, decided, swept."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentmesh.commands import CancelTask, CqrsBus, CreateTenant, SubmitTask, build_bus
from agentmesh.commands.approvals import (
    DecideApproval,
    GetApproval,
    ListApprovals,
    RequestToolApproval,
    SweepApproval,
)
from agentmesh.commands.safety import SetSafetyPolicy
from agentmesh.domain.approval import args_digest
from agentmesh.envelope import Envelope
from agentmesh.errors import ApprovalConflict, Forbidden, NotFound, ValidationError
from agentmesh.store.persistence import Persistence, open_persistence

T = "acme"


@pytest.fixture
async def app() -> AsyncIterator[tuple[Persistence, CqrsBus]]:
    p = await open_persistence("memory://")
    bus = build_bus(p.store, p.read_models)
    await bus.execute(CreateTenant("Acme", tenant_id=T))
    yield p, bus
    await p.close()


@dataclasses.dataclass
class _Row:
    subject: str
    envelope: Envelope


async def _offers(p: Persistence) -> list[_Row]:
    pending = await p.store.outbox_pending(1000)  # type: ignore[attr-defined]
    rows = [_Row(r.subject, Envelope.decode(r.envelope)) for r in pending]
    return [r for r in rows if r.envelope.type == "task.offered" and ".evt." not in r.subject]


async def _status(bus: CqrsBus, task_id: str) -> str:
    from agentmesh.commands.handlers import CommandHandlers

    h: CommandHandlers = bus._commands[CancelTask].__self__  # type: ignore[attr-defined]
    return (await h.load_task(T, task_id)).status.value


async def test_gated_task_is_held_then_offered_exactly_once(
    app: tuple[Persistence, CqrsBus],
) -> None:
    p, bus = app
    await bus.execute(SubmitTask(T, "pay", {"amount": 5}, task_id="t1", requires_approval=True))
    assert await _status(bus, "t1") == "pending_approval"
    assert await _offers(p) == []  # no agent can see it
    await p.projector.catch_up()
    listed = await bus.query(ListApprovals(T))
    assert [a["approval_id"] for a in listed] == ["t1__a1"]
    assert listed[0]["arguments"] == {"amount": 5}
    assert listed[0]["args_sha256"] == args_digest({"amount": 5})
    await bus.execute(DecideApproval(T, "t1__a1", "approved", "alice", comment="ok"))
    offers = await _offers(p)
    assert len(offers) == 1
    assert offers[0].envelope.payload["amount"] == 5
    assert await _status(bus, "t1") == "offered"
    with pytest.raises(ApprovalConflict) as twice:
        await bus.execute(DecideApproval(T, "t1__a1", "approved", "bob"))
    assert twice.value.code == "APPROVAL_DECIDED"
    assert len(await _offers(p)) == 1
    shown = await bus.query(GetApproval(T, "t1__a1"))
    assert shown["status"] == "approved"
    assert shown["decided_by"] == "alice"


async def test_rejected_task_ends_rejected_with_reason_and_is_never_offered(
    app: tuple[Persistence, CqrsBus],
) -> None:
    p, bus = app
    await bus.execute(SubmitTask(T, "pay", {}, task_id="t2", requires_approval=True))
    await bus.execute(DecideApproval(T, "t2__a1", "rejected", "alice", comment="too risky"))
    from agentmesh.commands.handlers import CommandHandlers

    h: CommandHandlers = bus._commands[CancelTask].__self__  # type: ignore[attr-defined]
    task = await h.load_task(T, "t2")
    assert task.status.value == "rejected"
    assert "too risky" in (task.error or "")
    assert await _offers(p) == []
    with pytest.raises(ApprovalConflict):
        await bus.execute(DecideApproval(T, "t2__a1", "approved", "bob"))


async def test_edits_are_checked_against_the_schema_and_bound_args(
    app: tuple[Persistence, CqrsBus],
) -> None:
    p, bus = app
    await bus.execute(SubmitTask(T, "pay", {"amount": 5}, task_id="t3", requires_approval=True))
    schema = {"type": "object", "properties": {"amount": {"type": "integer", "maximum": 10}}}
    with pytest.raises(ValidationError) as bad:
        await bus.execute(
            DecideApproval(T, "t3__a1", "approved", "a", edits={"amount": 50}, schema=schema)
        )
    assert bad.value.code == "APPROVAL_EDITS_INVALID"
    with pytest.raises(ApprovalConflict) as changed:
        await bus.execute(DecideApproval(T, "t3__a1", "approved", "a", args_sha256="0" * 64))
    assert changed.value.code == "APPROVAL_ARGS_CHANGED"
    assert await _offers(p) == []
    assert await _status(bus, "t3") == "pending_approval"
    await bus.execute(
        DecideApproval(
            T,
            "t3__a1",
            "approved",
            "a",
            edits={"amount": 7},
            schema=schema,
            args_sha256=args_digest({"amount": 5}),
        )
    )
    offers = await _offers(p)
    assert [o.envelope.payload["amount"] for o in offers] == [7]


async def test_unknown_approval_is_not_found(app: tuple[Persistence, CqrsBus]) -> None:
    _, bus = app
    for bad in ("nope", "t9__a1"):
        with pytest.raises(NotFound):
            await bus.execute(DecideApproval(T, bad, "approved", "a"))


async def _policy(bus: CqrsBus, rules: list[dict[str, Any]], version: int = 2) -> None:
    await bus.execute(SetSafetyPolicy(T, {"version": version, "approvals": rules}, set_by="admin"))


async def test_policy_rules_gate_by_capability_priority_pattern_and_cost(
    app: tuple[Persistence, CqrsBus],
) -> None:
    p, bus = app
    await _policy(
        bus,
        [
            {"name": "pay", "capability": "pay*"},
            {"name": "urgent", "min_priority": 5},
            {"name": "wire", "payload_pattern": "wire"},
            {"name": "costly", "min_cost": 100},
        ],
    )
    cases = [
        ("a", "payments", {}, 3, True),
        ("b", "summarize", {}, 5, True),
        ("c", "summarize", {"method": "wire transfer"}, 3, True),
        ("d", "summarize", {"cost_estimate": 150}, 3, True),
        ("e", "summarize", {"cost_estimate": 50}, 3, False),
    ]
    for tid, cap, payload, prio, gated in cases:
        await bus.execute(SubmitTask(T, cap, payload, task_id=tid, priority=prio))
        assert (await _status(bus, tid) == "pending_approval") is gated, tid
    shown = await bus.query(GetApproval(T, "a__a1"))
    assert shown["rule"] == "pay"
    assert len(await _offers(p)) == 1  # only e


async def test_timeout_fallbacks_and_escalation(app: tuple[Persistence, CqrsBus]) -> None:
    _, bus = app
    await _policy(
        bus,
        [
            {"name": "r", "capability": "rej", "deadline_seconds": 0.1},
            {"name": "a", "capability": "auto", "deadline_seconds": 0.1, "on_timeout": "approve"},
            {
                "name": "e",
                "capability": "esc",
                "deadline_seconds": 0.1,
                "on_timeout": "escalate",
                "escalate_to": "admin",
                "escalate_seconds": 0.1,
            },
            {"name": "m", "capability": "remind", "remind_after_seconds": 0.1},
        ],
    )
    for cap in ("rej", "auto", "esc", "remind"):
        await bus.execute(SubmitTask(T, cap, {}, task_id=cap))
        assert await bus.execute(SweepApproval(T, cap)) is None  # not due yet
    await asyncio.sleep(0.15)  # the deadlines themselves are the thing under test
    with pytest.raises(ApprovalConflict) as late:
        await bus.execute(DecideApproval(T, "rej__a1", "approved", "alice"))
    assert late.value.code == "APPROVAL_EXPIRED"
    assert await bus.execute(SweepApproval(T, "rej")) == "rejected"
    assert await _status(bus, "rej") == "rejected"
    assert await bus.execute(SweepApproval(T, "auto")) == "approved"
    assert await _status(bus, "auto") == "offered"
    assert await bus.execute(SweepApproval(T, "esc")) == "escalated"
    assert await _status(bus, "esc") == "pending_approval"
    with pytest.raises(Forbidden):
        await bus.execute(DecideApproval(T, "esc__a1", "approved", "bob", roles=("approver",)))
    await asyncio.sleep(0.15)
    assert await bus.execute(SweepApproval(T, "esc")) == "rejected"  # escalated deadline
    assert await bus.execute(SweepApproval(T, "remind")) == "reminded"
    assert await bus.execute(SweepApproval(T, "remind")) is None  # one reminder
    shown = await bus.query(GetApproval(T, "esc__a1"))
    assert shown["escalations"][0]["to_role"] == "admin"
    assert shown["automatic"]


async def test_tool_call_gate_is_bound_to_call_and_arguments(
    app: tuple[Persistence, CqrsBus],
) -> None:
    p, bus = app
    await bus.execute(SubmitTask(T, "llm", {"prompt": "hi"}, task_id="t5"))
    from agentmesh.commands import RunTask

    await bus.execute(RunTask(T, "t5", "agent-1"))
    req = RequestToolApproval(
        T, "t5", "agent-1", "send_email", "call-1", {"to": "x@example.com"}, "I will mail"
    )
    first = await bus.execute(req)
    again = await bus.execute(req)  # an agent's retry: the same approval
    assert first["approval_id"] == again["approval_id"] == "t5__a1"
    assert await _status(bus, "t5") == "pending_approval"
    with pytest.raises(ApprovalConflict) as other:
        await bus.execute(DecideApproval(T, "t5__a1", "approved", "a", call_id="call-2"))
    assert other.value.code == "APPROVAL_CALL_MISMATCH"
    before = len(await _offers(p))
    await bus.execute(DecideApproval(T, "t5__a1", "approved", "a", edits={"to": "y@example.com"}))
    offers = await _offers(p)
    assert len(offers) == before + 1
    ctx = offers[-1].envelope.context["approval"]
    assert ctx["arguments"] == {"to": "y@example.com"}
    assert ctx["edited"] is True
    assert ctx["call_id"] == "call-1"
    assert ctx["decision"] == "approved"
    with pytest.raises(ApprovalConflict):  # replayed onto the (now offered) task
        await bus.execute(DecideApproval(T, "t5__a1", "approved", "a"))
    assert dataclasses.is_dataclass(req)
