"""Approval gates inside an LLM agent: a tool marked as needing approval pauses the task
at that call, as state in the store, not as a coroutine waiting in memory.

At a gated call the agent sends the control plane (``tool_call`` approval request) the
tool, the exact arguments, the model's reasoning so far and the whole conversation, then
ends the attempt with :class:`~agentmesh.errors.TaskPaused` (the delivery is acked, no
outcome). The task is ``pending_approval`` in the store. The decision re-offers it
through the outbox with ``context.approval`` (see
:func:`agentmesh.commands.approval_messages.resume_context`); whichever agent takes it
rebuilds the conversation, answers the gated call (approved: the tool runs with the
approved, possibly edited, arguments as a durable task whose id is bound to the
approval, so a redelivery never runs it twice; rejected: the model is told) and carries
on. A resume is refused unless the call id is one the conversation left unanswered and
the arguments hash to the approved ``args_sha256``.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from agentmesh.agents.llm_tools import DEPTH, ToolBox, depth_of, redact, schema_problem
from agentmesh.domain.approval import args_digest
from agentmesh.errors import AgentMeshError, RemoteError, TaskPaused, ValidationError
from agentmesh.llm.base import ChatMessage, ToolCall, ToolSpec, Usage
from agentmesh.runtime.approval_client import request_approval
from agentmesh.runtime.context import TaskContext

if TYPE_CHECKING:
    from agentmesh.agents.llm import ModelRun

MAX_REASONING = 8_000


def message_to_data(m: ChatMessage) -> dict[str, Any]:
    """The JSON form of one conversation turn (what the store keeps)."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [c.to_dict() for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        out["name"] = m.name
    return out


def message_from_data(raw: Mapping[str, Any]) -> ChatMessage:
    """One turn back from :func:`message_to_data`."""
    role = raw.get("role")
    if role not in ("system", "user", "assistant", "tool"):
        raise ValidationError(f"a stored conversation turn has role {role!r}")
    calls = tuple(
        ToolCall(str(c["id"]), str(c["name"]), dict(c.get("arguments") or {}))
        for c in raw.get("tool_calls") or ()
    )
    return ChatMessage(
        role,
        str(raw.get("content") or ""),
        calls,
        raw.get("tool_call_id"),
        raw.get("name"),
    )


def unanswered(messages: list[ChatMessage]) -> list[ToolCall]:
    """The calls of the last assistant turn that no tool message answers yet."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "assistant":
            answered = {m.tool_call_id for m in messages[i + 1 :] if m.role == "tool"}
            return [c for c in messages[i].tool_calls if c.id not in answered]
    return []


class ApprovalGate:
    """Which tool calls of an LLM agent need a person, and the pause/resume around them."""

    def __init__(self, toolbox: ToolBox, tools: Collection[str] = ()) -> None:
        self.toolbox = toolbox
        self.tools = tuple(tools)

    def gated(self, tool: str) -> bool:
        """Marked in the agent's config, or by an ``approvals`` rule with ``tools`` in the
        tenant's safety policy in force in this process."""
        if any(fnmatch.fnmatchcase(tool, t) for t in self.tools):
            return True
        guard = getattr(self.toolbox.mesh, "safety", None)
        section = getattr(getattr(guard, "policy", None), "approvals", None) if guard else None
        return any(rule.matches_tool(tool) for rule in getattr(section, "rules", ()))

    async def answer(
        self,
        task: TaskContext,
        run: ModelRun,
        messages: list[ChatMessage],
        calls: Collection[ToolCall],
        offered: Mapping[str, ToolSpec],
    ) -> None:
        """Answer ``calls`` (already in ``messages`` as the last assistant turn): ungated
        ones run now; the first gated one offered to the model pauses the task."""
        ungated = [c for c in calls if not (c.name in offered and self.gated(c.name))]
        answers = await self.toolbox.call_all(task, ungated, offered)
        for call, (reply, record) in zip(ungated, answers, strict=True):
            messages.append(ChatMessage.tool_result(call, reply))
            run.tool_calls.append(record)
        gated = [c for c in calls if c not in ungated]
        if gated:
            await self.pause(task, run, messages, gated[0])

    async def pause(
        self, task: TaskContext, run: ModelRun, messages: list[ChatMessage], call: ToolCall
    ) -> None:
        """Store the pause (the control plane answers once it has it), then end the
        attempt with :class:`TaskPaused`."""
        secrets = self.toolbox.secrets
        reasoning = "\n".join(m.content for m in messages if m.role == "assistant" and m.content)
        state = {
            "run": {
                "rounds": run.rounds,
                "tool_calls": run.tool_calls,
                "usage": run.usage.to_dict(),
                "cost": run.cost,
            }
        }
        body = {
            "op": "tool_call",
            "task_id": task.task_id,
            "agent_id": self.toolbox.agent_id,
            "tool": call.name,
            "call_id": call.id,
            "arguments": redact(call.arguments, secrets),
            "reasoning": redact(reasoning[-MAX_REASONING:], secrets),
            "conversation": [state, *(redact(message_to_data(m), secrets) for m in messages)],
        }
        try:
            answer = await request_approval(
                self.toolbox.mesh.transport, task.tenant_id, body, source=self.toolbox.agent_id
            )
        except RemoteError as exc:
            if exc.code == "TASK_NOT_RUNNING":  # paused already (a redelivered attempt)
                raise TaskPaused(f"task {task.task_id} waits already: {exc}") from None
            raise
        raise TaskPaused(
            f"task {task.task_id} waits for approval {answer['approval_id']} of {call.name}"
        )

    @staticmethod
    def resumed(task: TaskContext) -> dict[str, Any] | None:
        """The decision a re-offered task carries, if it resumes after an approval."""
        ctx = task.envelope.context.get("approval")
        return ctx if isinstance(ctx, dict) and ctx.get("call_id") else None

    async def resume(
        self,
        task: TaskContext,
        run: ModelRun,
        decision: Mapping[str, Any],
        offered: Mapping[str, ToolSpec],
    ) -> list[ChatMessage]:
        """The conversation rebuilt and the decided call answered; other calls of that
        turn are answered (or gated) next."""
        stored = list(decision.get("conversation") or ())
        for item in stored:
            if isinstance(item, dict) and isinstance(item.get("run"), dict):
                state = item["run"]
                run.rounds = int(state.get("rounds", 0))
                run.tool_calls = list(state.get("tool_calls") or ())
                used = state.get("usage") or {}
                run.usage += Usage(
                    int(used.get("input_tokens", 0)), int(used.get("output_tokens", 0))
                )
                run.cost = float(state.get("cost", 0.0))
        messages = [message_from_data(m) for m in stored if isinstance(m, dict) and "role" in m]
        pending = unanswered(messages)
        call = next((c for c in pending if c.id == decision["call_id"]), None)
        arguments = dict(decision.get("arguments") or {})
        if call is None or call.name != decision.get("tool"):
            raise ValidationError(
                f"approval {decision.get('approval_id')} is for call {decision['call_id']!r}, "
                "which this conversation does not wait for"
            )
        if args_digest(arguments) != decision.get("args_sha256"):
            raise ValidationError(
                f"approval {decision.get('approval_id')}: the arguments do not match the "
                "approved args_sha256"
            )
        if decision.get("decision") == "approved":
            reply, record = await self._run_approved(task, call, arguments, decision, offered)
        else:
            who, why = decision.get("decided_by", "an approver"), decision.get("comment") or ""
            reply = {"error": f"the call was rejected by {who}" + (f": {why}" if why else "")}
            record = {"id": call.id, "name": call.name, "arguments": arguments}
            record.update(status="rejected", error=reply["error"], ms=0.0)
        record["approval_id"] = decision.get("approval_id")
        messages.append(ChatMessage.tool_result(call, reply))
        run.tool_calls.append(record)
        rest = [c for c in pending if c.id != call.id]
        if rest:
            await self.answer(task, run, messages, rest, offered)
        return messages

    async def _run_approved(
        self,
        task: TaskContext,
        call: ToolCall,
        arguments: dict[str, Any],
        decision: Mapping[str, Any],
        offered: Mapping[str, ToolSpec],
    ) -> tuple[Any, dict[str, Any]]:
        """Run the approved call once: a durable task whose id is bound to the approval
        (a redelivered resume finds its outcome instead of running it again)."""
        started = time.perf_counter()
        record: dict[str, Any] = {
            "id": call.id,
            "name": call.name,
            "arguments": redact(arguments, self.toolbox.secrets),
            "edited": bool(decision.get("edited")),
        }
        spec = offered.get(call.name)
        if spec is None:
            answer: Any = {"error": f"tool {call.name!r} is not available"}
            record["status"] = "refused"
        elif (problem := schema_problem(spec.parameters, arguments)) is not None:
            answer = {"error": f"approved arguments do not match the schema: {problem}"}
            record["status"] = "invalid"
        else:
            payload = {k: v for k, v in arguments.items() if k != DEPTH}
            if DEPTH in (spec.parameters.get("properties") or {}):
                payload[DEPTH] = depth_of(task) + 1
            try:
                result = await self.toolbox.mesh.run(
                    call.name,
                    payload,
                    task_id=f"{decision['approval_id']}-call",
                    timeout=self.toolbox.policy.timeout,
                    parent_task_id=task.task_id,
                )
                answer = redact(result, self.toolbox.secrets)
                record.update(status="ok", result=answer)
            except (AgentMeshError, TimeoutError) as exc:
                answer = {"error": redact(f"{type(exc).__name__}: {exc}", self.toolbox.secrets)}
                record["status"] = "error"
        if record["status"] != "ok":
            record["error"] = answer["error"]
        record["ms"] = round((time.perf_counter() - started) * 1000, 3)
        await self.toolbox._audit(task, record)
        return answer, record


__all__ = ["ApprovalGate", "message_from_data", "message_to_data", "unanswered"]
