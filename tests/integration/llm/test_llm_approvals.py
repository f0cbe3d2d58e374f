"""An LLM agent pauses at a gated tool call (store state, not a waiting coroutine):
against the local model server, with a control plane (memory store) on the same mesh.
The agent that paused is stopped; a new one resumes on the decision. Approval with
edited arguments runs the tool with the edits (once) and the final answer says so; an
approval cannot be replayed onto the next call."""

from __future__ import annotations

from typing import Any

import pytest

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.commands import CreateTenant
from agentmesh.commands.approvals import DecideApproval, GetApproval
from agentmesh.controlplane import ControlPlane
from agentmesh.errors import ApprovalConflict, NotFound
from agentmesh.testing import ModelRequest, Reply
from tests.helpers import until
from tests.integration.llm.conftest import World
from tests.unit.api.conftest import running

pytestmark = pytest.mark.integration

EMAIL_SPEC = {
    "description": "Sends an e-mail",
    "input_schema": {
        "type": "object",
        "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
        "required": ["to", "body"],
    },
}


def mailer(request: ModelRequest) -> Reply:
    """First turn: mail the boss; second: mail the team; then report what happened
    (mailboxes are names, not e-mail addresses, which the PII rules would redact)."""
    results = request.tool_results
    if not results:
        return Reply.call("send_email", {"to": "desk-of-the-boss", "body": "hi"})
    if len(results) == 1:
        return Reply.call("send_email", {"to": "all-of-the-team", "body": "hi all"})
    return Reply.say(_say(results))


def _say(results: list[tuple[str, Any]]) -> str:
    parts = []
    for _, r in results:
        if isinstance(r, dict) and "sent_to" in r:
            parts.append(f"sent to {r['sent_to']}")
        else:
            parts.append(f"not sent: {r.get('error') if isinstance(r, dict) else r}")
    return "; ".join(parts)


async def _approval(plane: ControlPlane, tenant: str, approval_id: str) -> dict[str, Any]:
    """The approval once it is pending (polled, bounded)."""

    async def pending() -> dict[str, Any] | None:
        found: dict[str, Any] = await plane.bus.query(GetApproval(tenant, approval_id))
        return found if found["status"] == "pending" else None

    found: dict[str, Any] = await until(
        pending, 20, f"approval {approval_id} pending", not_yet=(NotFound,)
    )
    return found


async def test_gated_tool_call_pauses_resumes_with_edits_and_refuses_replay(
    world: World,
) -> None:
    settings = world.mesh.settings.model_copy(update={"database_url": "memory://"})
    plane = ControlPlane(settings, world.mesh, projection_interval=0.05)
    sent: list[dict[str, Any]] = []

    def send(payload: dict[str, Any]) -> dict[str, Any]:
        sent.append(payload)
        return {"sent_to": payload["to"]}

    world.tool("send_email", send, EMAIL_SPEC)
    first = world.llm(agent_id="writer-1", approval_tools=["send_email"])
    await world.start(2)
    await plane.start()
    try:
        await plane.bus.execute(CreateTenant("Mailers " + world.tenant, tenant_id=world.tenant))
        world.server.respond_with(mailer)
        task_id = await world.mesh.submit("research", {"prompt": "tell the boss"})
        a1 = await _approval(plane, world.tenant, f"{task_id}__a1")
        assert a1["tool"] == "send_email"
        assert a1["kind"] == "tool_call"
        assert a1["arguments"] == {"to": "desk-of-the-boss", "body": "hi"}
        assert a1["conversation"], "the conversation so far is in the store"
        assert a1["task"]["status"] == "pending_approval"
        assert sent == [], "nothing ran while pending"

        # through REST: edits are checked against the schema the tool agent declares
        app = create_app(
            settings, world.mesh, plane=plane, options=ApiOptions(rate_limit_enabled=False)
        )
        async for api in running(app):
            r = await api.client.post(
                f"/v1/tenants/{world.tenant}/approvals/{a1['approval_id']}/approve",
                json={"arguments": {"to": 42}},
                headers=api.auth(world.tenant, "approver", sub="alice"),
            )
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "APPROVAL_EDITS_INVALID"
        assert (await _approval(plane, world.tenant, a1["approval_id"]))["status"] == "pending"

        # the agent that paused goes away; another one resumes from the store
        await first.stop()
        second = world.llm(agent_id="writer-2", approval_tools=["send_email"])
        await second.start()
        edits = {"to": "desk-of-the-ceo", "body": "hi"}
        await plane.bus.execute(
            DecideApproval(
                world.tenant,
                a1["approval_id"],
                "approved",
                "alice",
                roles=("approver",),
                comment="the CEO, not the boss",
                edits=edits,
                call_id=a1["call_id"],
                args_sha256=a1["args_sha256"],
            )
        )
        a2 = await _approval(plane, world.tenant, f"{task_id}__a2")
        assert a2["arguments"] == {"to": "all-of-the-team", "body": "hi all"}
        assert sent == [edits], "the approved call ran once, with the edits"
        # replay: the first approval's binding onto the second call, or approving it again
        for bad in (
            DecideApproval(
                world.tenant,
                a2["approval_id"],
                "approved",
                "mallory",
                call_id=a1["call_id"],
            ),
            DecideApproval(
                world.tenant,
                a2["approval_id"],
                "approved",
                "mallory",
                args_sha256=a1["args_sha256"],
            ),
            DecideApproval(world.tenant, a1["approval_id"], "approved", "mallory"),
        ):
            with pytest.raises(ApprovalConflict):
                await plane.bus.execute(bad)
        await plane.bus.execute(
            DecideApproval(
                world.tenant, a2["approval_id"], "rejected", "alice", comment="not the team"
            )
        )
        out = await world.mesh.wait_result(task_id, timeout=30)
        assert out["text"] == (
            "sent to desk-of-the-ceo; not sent: the call was rejected by alice: not the team"
        )
        assert [c["status"] for c in out["tool_calls"]] == ["ok", "rejected"]
        assert out["tool_calls"][0]["edited"] is True
        assert sent == [edits], "the rejected call never ran"
        assert world.calls["send_email"] == 1
    finally:
        await plane.stop()
