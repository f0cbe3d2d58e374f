"""The wire format of ``/ws`` (pure): the server envelope and parsing of client frames."""

from __future__ import annotations

import agentmesh.api.ws as ws
from agentmesh.api.ws_protocol import WsType, new_message_id, parse, ws_message


def test_the_envelope_is_lowercase_with_ids_and_a_timestamp() -> None:
    msg = ws_message("TASK_UPDATE", {"task_id": "t-1"}, "c-1")
    assert msg["type"] == "task_update"
    assert msg["data"] == {"task_id": "t-1"}
    assert msg["connection_id"] == "c-1"
    assert msg["timestamp"].endswith("+00:00")
    assert len(msg["message_id"]) >= 20
    assert "connection_id" not in ws_message(WsType.PING)
    assert ws_message(WsType.PING)["data"] == {}
    assert new_message_id() != new_message_id()


def test_only_json_objects_parse() -> None:
    assert parse('{"type": "ping"}') == {"type": "ping"}
    assert parse("[1, 2]") is None
    assert parse('"ping"') is None
    assert parse("{not json") is None


def test_the_public_names_stay_importable_from_the_hub_module() -> None:
    for name in ws.__all__:
        assert hasattr(ws, name), name
    assert ws.WsType is WsType
    assert ws.ws_message is ws_message
