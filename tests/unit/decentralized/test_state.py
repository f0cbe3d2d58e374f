"""The replicated state machine: pure, deterministic, every rejection with its reason."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentmesh.decentralized.state import ClusterState, validate
from agentmesh.errors import ValidationError


def submit(*ids: str) -> dict[str, Any]:
    return {"op": "submit", "tasks": [{"id": i, "payload": {"n": n}} for n, i in enumerate(ids)]}


def test_config_is_versioned_and_compare_and_set_rejects_a_stale_version() -> None:
    s = ClusterState()
    assert s.apply({"op": "set", "key": "a", "value": 1}) == {"ok": True, "key": "a", "version": 1}
    assert s.apply({"op": "set", "key": "a", "value": 2, "expect_version": 1})["version"] == 2
    stale = s.apply({"op": "set", "key": "a", "value": 3, "expect_version": 1})
    assert stale == {"ok": False, "reason": "'a' is at version 2, not 1"}
    assert s.config["a"] == {"value": 2, "version": 2}
    assert s.apply({"op": "delete", "key": "zz"}) == {
        "ok": False,
        "reason": "no configuration key 'zz'",
    }
    assert s.apply({"op": "delete", "key": "a"})["ok"]


def test_the_first_committed_decision_wins() -> None:
    s = ClusterState()
    assert s.apply({"op": "decide", "key": "color", "value": "red"})["new"] is True
    assert s.apply({"op": "decide", "key": "color", "value": "red"})["new"] is False
    assert s.apply({"op": "decide", "key": "color", "value": "blue"}) == {
        "ok": False,
        "reason": "'color' is already decided: 'red'",
    }


def test_claims_follow_submit_order_and_a_result_is_committed_once() -> None:
    s = ClusterState()
    assert s.apply(submit("t1", "t2", "t3")) == {"ok": True, "added": 3, "known": 0}
    assert s.apply(submit("t1"))["known"] == 1  # idempotent
    assert s.apply({"op": "claim", "node": "a", "max": 2})["tasks"] == ["t1", "t2"]
    assert s.apply({"op": "claim", "node": "b", "max": 5})["tasks"] == ["t3"]
    assert s.apply({"op": "claim", "node": "b", "max": 5})["tasks"] == []
    done = {"op": "complete", "task": "t1", "node": "a", "outcome": "completed", "result": 1}
    assert s.apply(done)["ok"]
    again = s.apply(done)
    assert again["ok"] is False
    assert "already has a committed result" in again["reason"]
    thief = s.apply({**done, "task": "t3", "node": "a"})
    assert thief == {"ok": False, "reason": "task 't3' is not claimed by a (claimant: b)"}
    assert s.results_committed == 1
    assert s.results_rejected == 2
    assert s.outcome("t1") == {"outcome": "completed", "result": 1, "node": "a"}


def test_release_puts_a_dead_nodes_claims_back_first_and_its_late_result_is_refused() -> None:
    s = ClusterState()
    s.apply(submit("t1", "t2", "t3"))
    s.apply({"op": "claim", "node": "a", "max": 2})
    released = s.apply({"op": "release", "node": "a"})
    assert released["released"] == ["t1", "t2"]
    assert list(s.pending) == ["t1", "t2", "t3"]
    assert s.apply({"op": "claim", "node": "b", "max": 1})["tasks"] == ["t1"]
    late = s.apply({"op": "complete", "task": "t1", "node": "a", "outcome": "completed"})
    assert late["ok"] is False
    assert s.tasks["t1"]["claims"] == 2
    assert s.summary()["tasks"] == {"total": 3, "pending": 2, "claimed": 1, "done": 0}


def test_a_proposal_id_is_applied_once_and_answers_the_first_result_again() -> None:
    s = ClusterState()
    first = s.apply({"op": "set", "key": "a", "value": 1, "pid": "p1"})
    again = s.apply({"op": "set", "key": "a", "value": 1, "pid": "p1"})
    assert again == {**first, "duplicate": True}
    assert s.config["a"]["version"] == 1
    assert s.applied == 2  # still an entry of the log


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("x", "a proposal is a JSON object"),
        ({"op": "nope"}, "unknown proposal op 'nope'"),
        ({"op": "set", "key": ""}, "'key' must be a string"),
        ({"op": "set", "key": "k"}, "'value' is required"),
        ({"op": "claim", "node": "a", "max": 0}, "'max' must be 1-1000"),
        ({"op": "submit", "tasks": []}, "'tasks' must be a list"),
        ({"op": "complete", "task": "t", "node": "a", "outcome": "meh"}, "'outcome' must be"),
        ({"op": "set", "key": "k", "value": 1, "pid": 5}, "'pid' must be a string"),
    ],
)
def test_malformed_proposals_are_refused_before_and_after_commit(
    command: Any, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        validate(command)
    s = ClusterState()
    result = s.apply(command)
    assert result["ok"] is False
    assert message.split("'")[0] in result["reason"]


commands = st.one_of(
    st.builds(
        lambda k, v: {"op": "set", "key": k, "value": v}, st.sampled_from("abc"), st.integers()
    ),
    st.builds(
        lambda k, v: {"op": "decide", "key": k, "value": v},
        st.sampled_from("ab"),
        st.integers(0, 2),
    ),
    st.builds(
        lambda ids: submit(*ids), st.lists(st.sampled_from(["t1", "t2", "t3", "t4"]), min_size=1)
    ),
    st.builds(
        lambda n, m: {"op": "claim", "node": n, "max": m}, st.sampled_from("ab"), st.integers(1, 3)
    ),
    st.builds(
        lambda t, n: {"op": "complete", "task": t, "node": n, "outcome": "completed", "result": t},
        st.sampled_from(["t1", "t2", "t3", "t4"]),
        st.sampled_from("ab"),
    ),
    st.builds(lambda n: {"op": "release", "node": n}, st.sampled_from("ab")),
)


@given(st.lists(commands, max_size=40))
def test_replicas_applying_the_same_log_agree_and_a_snapshot_restores_the_state(
    log: list[dict[str, Any]],
) -> None:
    one, two = ClusterState(), ClusterState()
    for i, command in enumerate(log):
        assert one.apply(command) == two.apply(command)
        if i == len(log) // 2:  # a replica restored from a snapshot goes on identically
            two = pickle.loads(pickle.dumps(two))
    assert one.digest == two.digest
    assert one.summary() == two.summary()
    # invariants: a task is in exactly one place; results are never counted twice
    for task_id, task in one.tasks.items():
        places = (task_id in one.pending) + any(task_id in c for c in one.claims.values())
        assert places == (0 if task["status"] == "done" else 1)
    assert one.results_committed == sum(t["status"] == "done" for t in one.tasks.values())
