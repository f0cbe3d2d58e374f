"""The wire format: six keys, filled defaults, safe encoding, CloudEvents, golden files."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentmesh.envelope import DEFAULT_TENANT, KEYS, Envelope
from agentmesh.errors import EnvelopeError

GOLDEN = Path(__file__).parent.parent / "golden"


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes().strip()


@pytest.mark.parametrize("name", ["envelope_task_offered.json", "envelope_encrypted.json"])
def test_golden_files_round_trip_byte_for_byte(name: str) -> None:
    raw = golden(name)
    env = Envelope.decode(raw)
    assert env.encode() == raw
    assert list(orjson.loads(env.encode())) == list(KEYS)


def test_golden_cloudevent_mapping() -> None:
    env = Envelope.decode(golden("envelope_task_offered.json"))
    assert env.to_cloudevent() == orjson.loads(golden("cloudevent_task_offered.json"))
    assert Envelope.from_cloudevent(env.to_cloudevent()) == env


def test_defaults_are_filled() -> None:
    env = Envelope()
    assert uuid.UUID(env.id).version == 4
    ts = datetime.fromisoformat(env.metadata["timestamp"])
    assert ts.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - ts).total_seconds()) < 5
    assert env.tenant_id == DEFAULT_TENANT
    assert orjson.loads(env.encode()) == {
        "metadata": env.metadata,
        "routing": {},
        "payload": {},
        "context": {},
        "security": {},
        "tenant_id": DEFAULT_TENANT,
    }


def test_decode_fills_missing_id_and_timestamp() -> None:
    env = Envelope.decode(b'{"payload": {"a": 1}}')
    assert env.id
    assert env.metadata["timestamp"]
    assert env.payload == {"a": 1}


class Color(enum.Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: int


def test_payload_values_are_encoded_instead_of_crashing() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    ref = uuid.uuid4()
    env = Envelope.create(
        "x",
        {
            "when": when,
            "naive": datetime(2026, 1, 2, 3, 4, 5),
            "day": date(2026, 1, 2),
            "ref": ref,
            "color": Color.RED,
            "point": Point(1, 2),
            "tags": {"a"},
            "pair": (1, 2),
            "raw": b"\x00\x01",
            "amount": Decimal("1.50"),
        },
    )
    payload = Envelope.decode(env.encode()).payload
    assert payload["when"] == "2026-01-02T03:04:05+02:00"
    assert payload["naive"] == "2026-01-02T03:04:05+00:00"
    assert payload["day"] == "2026-01-02"
    assert payload["ref"] == str(ref)
    assert payload["color"] == "red"
    assert payload["point"] == {"x": 1, "y": 2}
    assert payload["tags"] == ["a"]
    assert payload["pair"] == [1, 2]
    assert payload["raw"] == "AAE="
    assert payload["amount"] == "1.50"


def test_correlation_causation_and_traceparent() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    parent = Envelope.create("a", tenant_id="acme", traceparent=tp)
    assert parent.correlation_id == parent.id
    child = parent.reply("b", {"ok": True})
    assert child.tenant_id == "acme"
    assert child.correlation_id == parent.id
    assert child.causation_id == parent.id
    assert child.traceparent == tp
    grandchild = child.reply("c")
    assert grandchild.correlation_id == parent.id
    assert grandchild.causation_id == child.id


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"{not json", "not valid UTF-8 JSON"),
        (b"[1, 2]", "an envelope is a JSON object, got list"),
        (b'"text"', "got str"),
        (b'{"metadata": [], "tenant_id": "a"}', "'metadata' must be a JSON object, got list"),
        (b'{"payload": 3}', "'payload' must be a JSON object, got int"),
        (b'{"tenant_id": "no spaces"}', "'tenant_id' must be 1-64"),
        (b'{"tenant_id": 7}', "'tenant_id' must be 1-64"),
        (b'{"extra": 1}', "unknown top-level keys ['extra']"),
        (b'{"metadata": {"id": 5}}', "'metadata.id' must be a string"),
    ],
)
def test_bad_bytes_raise_a_typed_error_that_says_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Envelope.decode(raw)


def test_envelope_error_is_a_validation_error_with_a_code() -> None:
    with pytest.raises(ValueError, match="not valid UTF-8 JSON") as info:
        Envelope.decode(b"nope")
    assert isinstance(info.value, EnvelopeError)
    assert info.value.code == "INVALID_ENVELOPE"


def test_from_cloudevent_rejects_non_cloudevents() -> None:
    with pytest.raises(EnvelopeError, match=r"CloudEvents 1\.0"):
        Envelope.from_cloudevent({"id": "x"})


def test_foreign_cloudevent_is_accepted() -> None:
    env = Envelope.from_cloudevent(
        {
            "specversion": "1.0",
            "id": "abc",
            "source": "/sensors/1",
            "type": "com.example.reading",
            "time": "2026-11-25T00:00:00Z",
            "data": {"value": 3},
        }
    )
    assert env.id == "abc"
    assert env.type == "com.example.reading"
    assert env.metadata["source"] == "/sensors/1"
    assert env.payload == {"value": 3}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(
    payload=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    tenant=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
)
def test_any_json_payload_round_trips(payload: dict[str, Any], tenant: str) -> None:
    env = Envelope.create("prop", payload, tenant_id=tenant)
    again = Envelope.decode(env.encode())
    assert again == env
    assert Envelope.from_cloudevent(env.to_cloudevent()) == env
