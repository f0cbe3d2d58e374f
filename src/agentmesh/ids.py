"""The rules for identifiers, in one place, used by the envelope, subjects, the domain,
tokens and the entry points alike.

=============  =========================================  ==========
identifier     characters                                  length
=============  =========================================  ==========
tenant id      letters, digits, ``-``, ``_``               1-64
agent id       letters, digits, ``-``, ``_``               3-256
capability     letters, digits, ``-``, ``_``               1-100
name segment   letters, digits, ``-``, ``_`` (task ids,    1-256
               event type parts, other subject parts)
=============  =========================================  ==========
"""

from __future__ import annotations

import re

from agentmesh.errors import ValidationError

TENANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
AGENT_ID = re.compile(r"^[A-Za-z0-9_-]{3,256}$")
CAPABILITY = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def is_tenant_id(value: object) -> bool:
    """True when ``value`` is a valid tenant id."""
    return isinstance(value, str) and TENANT_ID.match(value) is not None


def is_agent_id(value: object) -> bool:
    """True when ``value`` is a valid agent id."""
    return isinstance(value, str) and AGENT_ID.match(value) is not None


def is_capability(value: object) -> bool:
    """True when ``value`` is a valid capability name."""
    return isinstance(value, str) and CAPABILITY.match(value) is not None


def check_tenant_id(value: object) -> str:
    """``value`` if it is a valid tenant id, else :class:`ValidationError`."""
    if not is_tenant_id(value):
        raise ValidationError(
            f"invalid tenant id {value!r}: use 1-64 letters, digits, '-' or '_'",
            code="INVALID_TENANT_ID",
        )
    assert isinstance(value, str)
    return value


def check_agent_id(value: object) -> str:
    """``value`` if it is a valid agent id, else :class:`ValidationError`."""
    if not is_agent_id(value):
        raise ValidationError(
            f"invalid agent id {value!r}: use 3-256 letters, digits, '-' or '_'",
            code="INVALID_AGENT_ID",
        )
    assert isinstance(value, str)
    return value


def check_capability(value: object) -> str:
    """``value`` if it is a valid capability name, else :class:`ValidationError`."""
    if not is_capability(value):
        raise ValidationError(
            f"invalid capability {value!r}: use 1-100 letters, digits, '-' or '_'",
            code="INVALID_CAPABILITY",
        )
    assert isinstance(value, str)
    return value


def check_segment(value: object, what: str) -> str:
    """``value`` if it is a valid name segment (task id, event type part ...)."""
    if not isinstance(value, str) or not SEGMENT.match(value):
        raise ValidationError(
            f"invalid {what} {value!r}: use 1-256 characters of letters, digits, '-' or '_'"
        )
    return value
